"""Both kustomize overlays, rendered by the real kubectl, against the Kubernetes 1.34 schemas and
the deployment policy: restricted pods, probes, limits, GPU placement, no inline secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from raildebug.settings import (
    CommonSettings,
    InferenceSettings,
    LogSettings,
    OrchestratorSettings,
    RailDebugSettings,
    RetrieverSettings,
    ServerSettings,
)
from raildebug.settings_report import Leaf, leaves
from tests.deploy.k8s_policy import (
    gpu_problems,
    image_is_pinned,
    pod_specs,
    probe_problems,
    security_problems,
)
from tests.support.k8s import KUBERNETES_VERSION, OVERLAYS
from tests.support.paths import REPO_ROOT

Rendered = dict[str, list[dict[str, Any]]]
PROMPTS_DIR = REPO_ROOT / "services" / "orchestrator" / "prompts"
# Variables the manifests set that are not RAILDEBUG_* settings (none today: every one is).
NON_SETTINGS_ENV: set[str] = set()
SETTINGS: dict[str, tuple[str, type[ServerSettings]]] = {
    "orchestrator": ("RAILDEBUG_ORCHESTRATOR_", OrchestratorSettings),
    "retriever": ("RAILDEBUG_RETRIEVER_", RetrieverSettings),
    "inference": ("RAILDEBUG_INFERENCE_", InferenceSettings),
}


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"{kind}/{name} not rendered")


def config_map(objects: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    matches = [
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(prefix)
    ]
    assert len(matches) == 1, f"expected one ConfigMap named {prefix}*"
    return matches[0]


def container(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = find(objects, kind, name)["spec"]["template"]["spec"]["containers"][0]
    return spec


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_manifest_validates_strictly_against_kubernetes_schemas(
    rendered: Rendered, overlay: str
) -> None:
    kinds = set()
    for obj in rendered[overlay]:
        # strict: unknown fields are errors, so a misspelt key cannot slip through
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        kinds.add(obj["kind"])
    expected = {
        "Namespace",
        "ConfigMap",
        "Service",
        "Deployment",
        "StatefulSet",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
    }
    assert expected <= kinds


def test_schema_validation_rejects_a_broken_manifest(rendered: Rendered) -> None:
    deployment = find(rendered["gpu-prod"], "Deployment", "orchestrator")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_restricted_with_probes_and_limits(rendered: Rendered, overlay: str) -> None:
    pods = dict(pod_specs(rendered[overlay]))
    assert set(pods) == {"Deployment/orchestrator", "Deployment/inference", "StatefulSet/retriever"}
    problems = [p for name, pod in pods.items() for p in security_problems(name, pod)]
    problems += [p for name, pod in pods.items() for p in probe_problems(name, pod)]
    problems += [p for name, pod in pods.items() for p in gpu_problems(name, pod)]
    assert problems == []
    for pod in pods.values():
        assert pod["automountServiceAccountToken"] is False
        assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
            "topology.kubernetes.io/zone",
            "kubernetes.io/hostname",
        }


def test_policy_checks_catch_violations(rendered: Rendered) -> None:
    name, pod = next(pod_specs(rendered["gpu-prod"]))
    bad = {**pod, "containers": [dict(pod["containers"][0])]}
    bad["containers"][0]["securityContext"] = {"runAsNonRoot": False}
    bad["containers"][0]["image"] = "ghcr.io/raildebug/x:latest"
    bad["containers"][0]["env"] = [{"name": "RAILDEBUG_X_API_KEY", "value": "sk-123"}]
    del bad["containers"][0]["livenessProbe"]
    problems = security_problems(name, bad) + probe_problems(name, bad)
    assert any("runAsNonRoot" in p for p in problems)
    assert any("root filesystem" in p for p in problems)
    assert any("not pinned" in p for p in problems)
    assert any("inline value" in p for p in problems)
    assert any("no livenessProbe" in p for p in problems)
    gpu_pod = {**pod, "containers": [{"resources": {"limits": {"nvidia.com/gpu": 1}}}]}
    gpu_pod.pop("nodeSelector", None)
    assert gpu_problems(name, gpu_pod)
    assert not image_is_pinned("python") and image_is_pinned("python@sha256:" + "0" * 64)


def test_inference_runs_on_gpu_nodes_in_prod_and_on_cpu_in_dev(rendered: Rendered) -> None:
    prod = find(rendered["gpu-prod"], "Deployment", "inference")
    pod = prod["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["containers"][0]["image"].endswith("-cuda")
    prod_settings = config_map(rendered["gpu-prod"], "inference-settings")["data"]
    assert prod_settings["RAILDEBUG_INFERENCE_N_GPU_LAYERS"] == "-1"

    dev = find(rendered["cpu-dev"], "Deployment", "inference")["spec"]["template"]["spec"]
    assert "nodeSelector" not in dev and "tolerations" not in dev
    assert "nvidia.com/gpu" not in str(dev["containers"][0]["resources"])
    assert dev["containers"][0]["image"].endswith("-cpu")
    dev_settings = config_map(rendered["cpu-dev"], "inference-settings")["data"]
    assert dev_settings["RAILDEBUG_INFERENCE_N_GPU_LAYERS"] == "0"
    # llama.cpp threads match the CPU limit instead of every core of the node
    limit = dev["containers"][0]["resources"]["limits"]["cpu"]
    assert dev_settings["RAILDEBUG_INFERENCE_N_THREADS"] == limit


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_values_only_references(rendered: Rendered, overlay: str) -> None:
    objects = rendered[overlay]
    assert [o for o in objects if o["kind"] == "Secret"] == []
    for obj in objects:
        if obj["kind"] == "ConfigMap" and "settings" in obj["metadata"]["name"]:
            for key, value in obj["data"].items():
                if any(word in key for word in ("TOKEN", "SECRET", "API_KEY", "PASSWORD")):
                    assert key.endswith("_FILE"), f"{key}={value} belongs in a Secret"
    orchestrator = container(objects, "Deployment", "orchestrator")
    refs = {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in orchestrator["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs["RAILDEBUG_ORCHESTRATOR_UPSTREAM_TOKEN"] == ("raildebug-auth", "upstream-token")
    assert refs["RAILDEBUG_OPENAI_API_KEY"] == ("raildebug-openai", "api-key")
    assert refs["RAILDEBUG_ORCHESTRATOR_LANGFUSE_SECRET_KEY"] == (
        "raildebug-langfuse",
        "secret-key",
    )
    for kind, name in (
        ("Deployment", "orchestrator"),
        ("Deployment", "inference"),
        ("StatefulSet", "retriever"),
    ):
        volumes = find(objects, kind, name)["spec"]["template"]["spec"]["volumes"]
        auth = next(v for v in volumes if v["name"] == "auth")
        assert auth["secret"]["secretName"] == "raildebug-auth"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_configured_variable_is_a_real_setting(rendered: Rendered, overlay: str) -> None:
    """Catches drift between the manifests and raildebug/settings.py (a renamed setting)."""
    for service, (_prefix, settings) in SETTINGS.items():
        # the service's own settings, its nested groups (RAILDEBUG_OPENAI_*), the shared ones
        known: dict[str, Leaf] = {
            leaf.variable: leaf
            for model in (settings, CommonSettings, LogSettings)
            for leaf in leaves(model)
        }
        data = config_map(rendered[overlay], f"{service}-settings")["data"]
        kind = "StatefulSet" if service == "retriever" else "Deployment"
        env = {e["name"] for e in container(rendered[overlay], kind, service).get("env", [])}
        for variable in set(data) | env:
            if variable not in NON_SETTINGS_ENV:
                assert variable in known, f"{variable} in {service}'s manifests is no setting"
        # and the values parse as those settings would read them
        values: dict[type[RailDebugSettings], dict[str, Any]] = {}
        for key, value in data.items():
            if key not in NON_SETTINGS_ENV:
                leaf = known[key]
                values.setdefault(leaf.owner, {})[leaf.name.rsplit(".", 1)[-1]] = value
        for owner, fields in values.items():
            owner.model_validate(fields)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_ports_and_config_references_resolve(rendered: Rendered, overlay: str) -> None:
    objects = rendered[overlay]
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    workloads = {name: pod for name, pod in pod_specs(objects)}
    for service in (o for o in objects if o["kind"] == "Service"):
        selected = [
            pod
            for name, pod in workloads.items()
            if service["spec"]["selector"].items()
            <= find(objects, *name.split("/"))["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(selected) == 1, f"Service {service['metadata']['name']} selects no workload"
        ports = {p["name"] for c in selected[0]["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports
    for name, pod in workloads.items():
        for c in pod["containers"]:
            for source in c.get("envFrom", []):
                assert ("ConfigMap", source["configMapRef"]["name"]) in names, name
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names, name
    orchestrator = config_map(objects, "orchestrator-settings")["data"]
    for key, service_name in (
        ("RAILDEBUG_ORCHESTRATOR_RETRIEVER_ADDRESS", "retriever-headless"),
        ("RAILDEBUG_ORCHESTRATOR_INFERENCE_ADDRESS", "inference-headless"),
    ):
        # dns:/// of a headless Service: the channel resolves every ready pod and balances
        # calls over them (a ClusterIP would pin each orchestrator to one pod).
        target = orchestrator[key]
        assert target.startswith("dns:///"), f"{key}={target} is not a dns:/// target"
        host, port = target.removeprefix("dns:///").rsplit(":", 1)
        service = find(objects, "Service", host)
        assert host == service_name
        assert service["spec"].get("clusterIP") == "None", f"{host} is not headless"
        assert int(port) in {p["port"] for p in service["spec"]["ports"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_use_the_plaintext_health_port_the_settings_open(
    rendered: Rendered, overlay: str
) -> None:
    """TLS on the gRPC port and kubelet gRPC probes work together only through health_port."""
    objects = rendered[overlay]
    for kind, name in (
        ("Deployment", "orchestrator"),
        ("StatefulSet", "retriever"),
        ("Deployment", "inference"),
    ):
        c = container(objects, kind, name)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        settings = config_map(objects, f"{name}-settings")["data"]
        assert int(settings[f"RAILDEBUG_{name.upper()}_HEALTH_PORT"]) == ports["health"]
        assert ports["health"] != ports["grpc"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["grpc"]["port"] == ports["health"], f"{name} {probe}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaling_and_disruption_budgets(rendered: Rendered, overlay: str) -> None:
    objects = rendered[overlay]
    hpas = {
        o["spec"]["scaleTargetRef"]["name"]: o
        for o in objects
        if o["kind"] == "HorizontalPodAutoscaler"
    }
    assert set(hpas) == {"orchestrator", "retriever"}
    for target, hpa in hpas.items():
        kind = hpa["spec"]["scaleTargetRef"]["kind"]
        assert "replicas" not in find(objects, kind, target)["spec"], "the HPA owns replicas"
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 10)
        targets = {
            m["resource"]["name"]: m["resource"]["target"]["averageUtilization"]
            for m in hpa["spec"]["metrics"]
        }
        assert targets == {"cpu": 70, "memory": 80}
    budgets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "PodDisruptionBudget"}
    for name, pod_labels in (
        ("orchestrator", find(objects, "Deployment", "orchestrator")),
        ("inference", find(objects, "Deployment", "inference")),
        ("retriever", find(objects, "StatefulSet", "retriever")),
    ):
        labels = pod_labels["spec"]["template"]["metadata"]["labels"]
        assert budgets[name]["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert budgets[name]["spec"]["maxUnavailable"] == 1


def allowed_sources(
    objects: list[dict[str, Any]], pod_labels: dict[str, str], port: int
) -> list[Any]:
    """The `from` peers of every NetworkPolicy rule that admits traffic to these pods on `port`;
    None stands for "any source"."""
    peers: list[Any] = []
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy"):
        if not policy["spec"]["podSelector"].get("matchLabels", {}).items() <= pod_labels.items():
            continue
        for rule in policy["spec"].get("ingress", []):
            ports = [p["port"] for p in rule.get("ports", [])]
            if ports and port not in ports:
                continue
            peers.extend(rule.get("from", [None]))
    return peers


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_let_only_the_orchestrator_reach_the_backends(
    rendered: Rendered, overlay: str
) -> None:
    objects = rendered[overlay]
    deny = find(objects, "NetworkPolicy", "default-deny-ingress")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    labels = {
        name: find(objects, kind, name)["spec"]["template"]["metadata"]["labels"]
        for kind, name in (
            ("Deployment", "orchestrator"),
            ("StatefulSet", "retriever"),
            ("Deployment", "inference"),
        )
    }
    assert allowed_sources(objects, labels["orchestrator"], 50051) == [None]
    for backend, port in (("retriever", 50052), ("inference", 50053)):
        peers = allowed_sources(objects, labels[backend], port)
        assert peers == [
            {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "orchestrator"}}}
        ]
    # the orchestrator itself is only reachable on its gRPC port (and metrics from monitoring)
    assert allowed_sources(objects, labels["orchestrator"], 50052) == []


def test_retriever_store_is_persistent_and_prod_can_use_weaviate(rendered: Rendered) -> None:
    for overlay in OVERLAYS:
        objects = rendered[overlay]
        retriever = find(objects, "StatefulSet", "retriever")
        claim = retriever["spec"]["volumeClaimTemplates"][0]
        mounts = {
            m["name"]: m["mountPath"]
            for m in container(objects, "StatefulSet", "retriever")["volumeMounts"]
        }
        store_dir = config_map(objects, "retriever-settings")["data"][
            "RAILDEBUG_RETRIEVER_STORE_DIR"
        ]
        assert Path(store_dir).is_relative_to(mounts[claim["metadata"]["name"]])
        headless = find(objects, "Service", retriever["spec"]["serviceName"])
        assert headless["spec"]["clusterIP"] == "None"
    prod = rendered["gpu-prod"]
    settings = config_map(prod, "retriever-settings")["data"]
    assert settings["RAILDEBUG_RETRIEVER_STORE_BACKEND"] == "weaviate"
    weaviate = RetrieverSettings.model_validate(
        {
            k.removeprefix("RAILDEBUG_RETRIEVER_").lower(): v
            for k, v in settings.items()
            if k.startswith("RAILDEBUG_RETRIEVER_WEAVIATE_")
        }
    )
    assert weaviate.weaviate_url.startswith("http://weaviate.")
    assert weaviate.weaviate_grpc_host.startswith("weaviate-grpc.")
    assert (
        "RAILDEBUG_RETRIEVER_STORE_BACKEND"
        not in config_map(rendered["cpu-dev"], "retriever-settings")["data"]
    )  # one machine: the embedded LanceDB default
    env = {e["name"]: e for e in container(prod, "StatefulSet", "retriever")["env"]}
    key_ref = env["RAILDEBUG_RETRIEVER_WEAVIATE_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert key_ref == {"name": "raildebug-weaviate", "key": "api-key"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_namespace_enforces_restricted_pod_security(rendered: Rendered, overlay: str) -> None:
    namespaces = [o for o in rendered[overlay] if o["kind"] == "Namespace"]
    assert len(namespaces) == 1
    labels = namespaces[0]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    name = namespaces[0]["metadata"]["name"]
    for obj in rendered[overlay]:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == name


def test_prompt_registry_config_map_matches_the_packaged_templates(rendered: Rendered) -> None:
    objects = rendered["gpu-prod"]
    prompts = config_map(objects, "orchestrator-prompts")
    pod = find(objects, "Deployment", "orchestrator")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "prompts")
    files = {item["path"]: prompts["data"][item["key"]] for item in volume["configMap"]["items"]}
    packaged = {p.name: p.read_text(encoding="utf-8") for p in PROMPTS_DIR.glob("*@*.toml")}
    assert files == packaged, "deploy/k8s/base/prompts drifted from services/orchestrator/prompts"
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "prompts")
    # The image's virtualenv layout (deploy/docker/orchestrator.Dockerfile, Python 3.11)
    dockerfile = (REPO_ROOT / "deploy/docker/orchestrator.Dockerfile").read_text(encoding="utf-8")
    assert (
        "ARG PYTHON_IMAGE=python:3.11" in dockerfile
        and "VIRTUAL_ENV=/opt/raildebug/venv" in dockerfile
    )
    assert (
        mount["mountPath"]
        == "/opt/raildebug/venv/lib/python3.11/site-packages/services/orchestrator/prompts"
    )
    assert mount["readOnly"] is True
