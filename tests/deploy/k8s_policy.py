"""Policy checks shared by the overlay and training-Job tests: each returns a list of problems."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from raildebug.grpc_runtime.server import LIVENESS_SERVICE

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
GPU = "nvidia.com/gpu"
SECRETISH = re.compile(r"(TOKEN|SECRET|PASSWORD|API_KEY|PRIVATE_KEY|CREDENTIAL)", re.IGNORECASE)


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in objects:
        if obj["kind"] in WORKLOAD_KINDS:
            yield f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]


def security_problems(name: str, pod: dict[str, Any]) -> list[str]:
    problems = []
    pod_ctx = pod.get("securityContext", {})
    if pod_ctx.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{name}: seccompProfile is not RuntimeDefault")
    if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
        problems.append(f"{name}: uses host namespaces")
    for container in pod["containers"] + pod.get("initContainers", []):
        where = f"{name}/{container['name']}"
        ctx = container.get("securityContext", {})
        if ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is not True:
            problems.append(f"{where}: runAsNonRoot is not true")
        if ctx.get("runAsUser", pod_ctx.get("runAsUser", 0)) == 0:
            problems.append(f"{where}: runs as uid 0")
        if ctx.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: root filesystem is writable")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if "ALL" not in ctx.get("capabilities", {}).get("drop", []):
            problems.append(f"{where}: does not drop ALL capabilities")
        if ctx.get("capabilities", {}).get("add"):
            problems.append(f"{where}: adds capabilities")
        if ctx.get("privileged"):
            problems.append(f"{where}: privileged")
        limits = container.get("resources", {}).get("limits", {})
        requests = container.get("resources", {}).get("requests", {})
        for resource in ("cpu", "memory"):
            if resource not in limits or resource not in requests:
                problems.append(f"{where}: no {resource} request and limit")
        if not any(m["mountPath"] == "/tmp" for m in container.get("volumeMounts", [])):
            problems.append(f"{where}: read-only root without a writable /tmp")
        image = container["image"]
        if not image_is_pinned(image):
            problems.append(f"{where}: image {image} is not pinned to a tag or digest")
        for env in container.get("env", []):
            if (
                "value" in env
                and SECRETISH.search(env["name"])
                and not env["name"].endswith("_FILE")
            ):
                problems.append(f"{where}: {env['name']} carries an inline value")
    return problems


def probe_problems(name: str, pod: dict[str, Any]) -> list[str]:
    problems = []
    for container in pod["containers"]:
        ports = {p["containerPort"] for p in container.get("ports", [])}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            spec = container.get(probe)
            if spec is None:
                problems.append(f"{name}/{container['name']}: no {probe}")
            elif "grpc" not in spec:
                problems.append(f"{name}/{container['name']}: {probe} is not a native gRPC probe")
            elif spec["grpc"]["port"] not in ports:
                problems.append(f"{name}/{container['name']}: {probe} probes an unexposed port")
            elif probe == "livenessProbe" and spec["grpc"].get("service") != LIVENESS_SERVICE:
                problems.append(
                    f"{name}/{container['name']}: livenessProbe must ask for {LIVENESS_SERVICE}, "
                    "or a dependency outage restarts the pod"
                )
    return problems


def gpu_problems(name: str, pod: dict[str, Any]) -> list[str]:
    """A pod asking for a GPU must land on GPU nodes and tolerate their taint, and vice versa."""
    wants_gpu = any(GPU in c.get("resources", {}).get("limits", {}) for c in pod["containers"])
    on_gpu_nodes = pod.get("nodeSelector", {}).get("nvidia.com/gpu.present") == "true"
    tolerates = any(t.get("key") == GPU for t in pod.get("tolerations", []))
    if wants_gpu and not (on_gpu_nodes and tolerates):
        return [f"{name}: GPU limit without GPU node selector and toleration"]
    if (on_gpu_nodes or tolerates) and not wants_gpu:
        return [f"{name}: placed on GPU nodes without a GPU limit"]
    for container in pod["containers"]:
        requests = container.get("resources", {}).get("requests", {})
        limits = container.get("resources", {}).get("limits", {})
        if GPU in requests and requests[GPU] != limits.get(GPU):
            return [f"{name}: GPU request differs from its limit"]
    return []


def image_is_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")
