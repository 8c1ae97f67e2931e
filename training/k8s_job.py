"""A training run as a Kubernetes Indexed Job, rendered from its config and submitted via the API.

One pod per node (completionMode Indexed, parallelism = completions = nodes). torchrun in every
pod meets the others through c10d rendezvous on pod 0, whose stable DNS name comes from a
headless Service. Checkpoints live on a PersistentVolumeClaim that outlives the Job, and every
start resumes from the newest complete checkpoint there, so pods retried after a failure
continue where the run stopped (`python -m training.k8s_job` is what each rank runs).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from kubernetes import client as k8s

from raildebug.errors import InvalidRequest, NotFound, NotReady, RailDebugError
from training.config import TrainingConfig

RENDEZVOUS_PORT = 29400
REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = "/etc/raildebug/training"
CONFIG_FILE = "run.yaml"
CHECKPOINT_DIR = "/checkpoints"
# deploy/docker/training.Dockerfile puts the repository's training/ and data/ here, so relative
# data paths in a config mean the same in the pod as in the checkout it was submitted from.
SOURCE_DIR = "/opt/raildebug/src"
# What torchrun starts on every rank: run_rank() below.
TRAIN_COMMAND = ("python", "-m", "training.k8s_job", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}")
RUN_LABEL = "raildebug.io/training-run"
# Ranks wait this long for each other, e.g. while a GPU node is being provisioned.
RENDEZVOUS_JOIN_TIMEOUT_S = 900


@dataclass(frozen=True)
class TrainingJobManifests:
    """Everything one run needs, in creation order."""

    claim: k8s.V1PersistentVolumeClaim
    config_map: k8s.V1ConfigMap
    service: k8s.V1Service
    job: k8s.V1Job

    def objects(self) -> list[Any]:
        return [self.claim, self.config_map, self.service, self.job]


def render_training_job(
    config: TrainingConfig, *, nodes: int | None = None, gpus_per_node: int | None = None
) -> TrainingJobManifests:
    """Build the Job and its companions; `nodes`/`gpus_per_node` override the config's."""
    nodes = config.distributed.nodes if nodes is None else nodes
    gpus = config.distributed.gpus_per_node if gpus_per_node is None else gpus_per_node
    if nodes < 1:
        raise InvalidRequest(f"--nodes must be at least 1, got {nodes}")
    if gpus < 0:
        raise InvalidRequest(f"--gpus-per-node must be 0 (CPU) or more, got {gpus}")
    if gpus == 0 and config.distributed.backend == "nccl":
        raise InvalidRequest(
            "distributed.backend is nccl but the run asks for no GPUs; set --gpus-per-node, "
            "or backend gloo/auto for a CPU run"
        )
    run = config.run.name
    kube = config.kubernetes
    names = _Names(run)
    labels = {
        "app.kubernetes.io/name": "raildebug-training",
        "app.kubernetes.io/component": "training",
        "app.kubernetes.io/part-of": "raildebug",
        RUN_LABEL: run,
    }
    pod_config = _pod_config(config, nodes, gpus)

    def meta(name: str) -> k8s.V1ObjectMeta:
        return k8s.V1ObjectMeta(name=name, namespace=kube.namespace, labels=dict(labels))

    claim = k8s.V1PersistentVolumeClaim(
        api_version="v1",
        kind="PersistentVolumeClaim",
        metadata=meta(names.claim),
        spec=k8s.V1PersistentVolumeClaimSpec(
            # Every rank writes its shard of a distributed checkpoint to the same directory.
            access_modes=["ReadWriteMany" if nodes > 1 else "ReadWriteOnce"],
            storage_class_name=kube.storage_class,
            resources=k8s.V1VolumeResourceRequirements(
                requests={"storage": kube.checkpoint_storage}
            ),
        ),
    )
    config_map = k8s.V1ConfigMap(
        api_version="v1",
        kind="ConfigMap",
        metadata=meta(names.config_map),
        data={CONFIG_FILE: yaml.safe_dump(pod_config, sort_keys=False)},
    )
    service = k8s.V1Service(
        api_version="v1",
        kind="Service",
        metadata=meta(names.service),
        spec=k8s.V1ServiceSpec(
            cluster_ip="None",
            # Ranks must resolve pod 0 before any of them is Ready.
            publish_not_ready_addresses=True,
            selector={RUN_LABEL: run},
            ports=[k8s.V1ServicePort(name="rendezvous", port=RENDEZVOUS_PORT)],
        ),
    )
    job = k8s.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=meta(names.job),
        spec=k8s.V1JobSpec(
            completion_mode="Indexed",
            completions=nodes,
            parallelism=nodes,
            # One failed rank takes the others down with it: budget whole-run retries.
            backoff_limit=kube.backoff_limit * nodes,
            ttl_seconds_after_finished=kube.ttl_seconds_after_finished,
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=dict(labels)),
                spec=_pod_spec(config, names, nodes, gpus),
            ),
        ),
    )
    return TrainingJobManifests(claim=claim, config_map=config_map, service=service, job=job)


def manifests_to_yaml(manifests: TrainingJobManifests) -> str:
    """The YAML `kubectl apply -f` would take (what --dry-run prints)."""
    api = k8s.ApiClient()
    documents = [api.sanitize_for_serialization(obj) for obj in manifests.objects()]
    text: str = yaml.safe_dump_all(documents, sort_keys=False)
    return text


def submit_training_job(manifests: TrainingJobManifests, api: k8s.ApiClient) -> None:
    """Create the claim (kept if it exists: it holds checkpoints to resume from), then the config
    map, Service and Job; the config map and Service are owned by the Job, so its TTL cleans
    them up."""
    core = k8s.CoreV1Api(api)
    batch = k8s.BatchV1Api(api)
    namespace = manifests.job.metadata.namespace
    name = manifests.job.metadata.name
    if _exists(lambda: batch.read_namespaced_job(name, namespace)):
        raise InvalidRequest(
            f"training job {name} already exists in namespace {namespace}; follow it with "
            f"`raildebug train status {name}`, or delete it (kubectl -n {namespace} delete job "
            f"{name}) to start again from its latest checkpoint"
        )
    claim_name = manifests.claim.metadata.name
    if not _exists(lambda: core.read_namespaced_persistent_volume_claim(claim_name, namespace)):
        _call(lambda: core.create_namespaced_persistent_volume_claim(namespace, manifests.claim))
    _replace_or_create(
        lambda: core.create_namespaced_config_map(namespace, manifests.config_map),
        lambda: core.replace_namespaced_config_map(
            manifests.config_map.metadata.name, namespace, manifests.config_map
        ),
    )
    _replace_or_create(
        lambda: core.create_namespaced_service(namespace, manifests.service),
        lambda: core.read_namespaced_service(manifests.service.metadata.name, namespace),
    )
    created: k8s.V1Job = _call(lambda: batch.create_namespaced_job(namespace, manifests.job))
    owner = [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": created.metadata.name,
            "uid": created.metadata.uid,
            "blockOwnerDeletion": False,
        }
    ]
    patch = {"metadata": {"ownerReferences": owner}}
    merge = "application/merge-patch+json"  # the client would send a dict as a JSON patch
    config_map_name = manifests.config_map.metadata.name
    service_name = manifests.service.metadata.name
    _call(
        lambda: core.patch_namespaced_config_map(
            config_map_name, namespace, patch, _content_type=merge
        )
    )
    _call(
        lambda: core.patch_namespaced_service(service_name, namespace, patch, _content_type=merge)
    )


@dataclass(frozen=True)
class RankStatus:
    index: int
    pod: str
    phase: str
    restarts: int
    node: str


@dataclass(frozen=True)
class TrainingJobStatus:
    name: str
    namespace: str
    state: str  # Pending, Running, Succeeded, Failed
    nodes: int
    active: int
    succeeded: int
    failed: int
    message: str
    ranks: list[RankStatus] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.state in ("Succeeded", "Failed")


def read_training_status(name: str, namespace: str, api: k8s.ApiClient) -> TrainingJobStatus:
    batch = k8s.BatchV1Api(api)
    core = k8s.CoreV1Api(api)
    job: k8s.V1Job = _call(
        lambda: batch.read_namespaced_job_status(name, namespace),
        not_found=f"training job {name} not found in namespace {namespace}; list them with "
        f"`kubectl -n {namespace} get jobs -l {RUN_LABEL}`",
    )
    status = job.status or k8s.V1JobStatus()
    conditions = {c.type: c for c in status.conditions or [] if c.status == "True"}
    state, message = "Pending", ""
    for kind in ("Complete", "Failed"):
        if kind in conditions:
            state = "Succeeded" if kind == "Complete" else "Failed"
            message = conditions[kind].message or conditions[kind].reason or ""
    if state == "Pending" and (status.active or 0) > 0:
        state = "Running"
    pods = _call(lambda: core.list_namespaced_pod(namespace, label_selector=f"{RUN_LABEL}={name}"))
    ranks = sorted(
        (_rank_status(pod) for pod in pods.items),
        key=lambda rank: (rank.index, rank.pod),
    )
    return TrainingJobStatus(
        name=name,
        namespace=namespace,
        state=state,
        nodes=job.spec.completions or 1,
        active=status.active or 0,
        succeeded=status.succeeded or 0,
        failed=status.failed or 0,
        message=message,
        ranks=ranks,
    )


def follow_training_job(
    name: str,
    namespace: str,
    api: k8s.ApiClient,
    on_change: Callable[[TrainingJobStatus], None],
    interval_s: float = 5.0,
    timeout_s: float | None = None,
) -> TrainingJobStatus:
    """Poll until the Job finishes (or `timeout_s`), reporting each change of its status."""
    started = time.monotonic()
    last: TrainingJobStatus | None = None
    while True:
        current = read_training_status(name, namespace, api)
        if current != last:
            on_change(current)
            last = current
        if current.finished:
            return current
        if timeout_s is not None and time.monotonic() - started >= timeout_s:
            return current
        time.sleep(interval_s)


def format_status(status: TrainingJobStatus) -> str:
    lines = [
        f"{status.namespace}/{status.name}: {status.state}  nodes {status.nodes}  "
        f"active {status.active}  succeeded {status.succeeded}  failed {status.failed}"
    ]
    if status.message:
        lines.append(f"  {status.message}")
    lines.extend(
        f"  rank {rank.index}  {rank.pod}  {rank.phase}  restarts {rank.restarts}  "
        f"node {rank.node or '-'}"
        for rank in status.ranks
    )
    return "\n".join(lines)


def connect() -> k8s.ApiClient:
    """An API client from in-cluster credentials or the local kubeconfig."""
    from kubernetes import config as kube_config

    try:
        kube_config.load_incluster_config()
    except kube_config.ConfigException:
        try:
            # Read KUBECONFIG now: the client's default was fixed when it was imported.
            kube_config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)
        except (kube_config.ConfigException, OSError) as error:
            raise NotReady(
                f"no Kubernetes cluster configured ({error}); set KUBECONFIG or run in a pod, "
                "or use --dry-run to print the manifests"
            ) from None
    return k8s.ApiClient()


class _Names:
    def __init__(self, run: str) -> None:
        self.job = run
        # Service names must start with a letter; run names may start with a digit.
        self.service = f"rdzv-{run}"
        self.config_map = f"{run}-config"
        self.claim = f"{run}-checkpoints"


def _pod_config(config: TrainingConfig, nodes: int, gpus: int) -> dict[str, Any]:
    """The config as the pods see it: resolved node/GPU counts, outputs on the checkpoint PVC,
    input files at their place in the image."""
    data = config.model_dump(mode="json")
    data["distributed"].update(nodes=nodes, gpus_per_node=gpus)
    output_dir = PurePosixPath(data["run"]["output_dir"])
    if not output_dir.is_absolute():
        data["run"]["output_dir"] = str(PurePosixPath(CHECKPOINT_DIR) / output_dir)
    mapped: dict[str, Any] = _map_local_paths(data, "")
    return mapped


def _map_local_paths(value: Any, key: str) -> Any:
    """Files of this checkout move to SOURCE_DIR; other existing local files cannot follow."""
    if isinstance(value, dict):
        return {k: _map_local_paths(v, f"{key}.{k}" if key else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_local_paths(item, key) for item in value]
    if not isinstance(value, str) or not value.startswith("/"):
        return value
    path = Path(value)
    if path.is_relative_to(REPO_ROOT):
        return str(PurePosixPath(SOURCE_DIR) / path.relative_to(REPO_ROOT).as_posix())
    if path.exists() and not path.is_relative_to(CHECKPOINT_DIR):
        raise InvalidRequest(
            f"{key}: {value} is a file on this machine, which the training pods cannot see; "
            f"put it under training/ or data/ in the repository (the image carries both), or "
            f"on the checkpoint volume ({CHECKPOINT_DIR}/...)"
        )
    return value


def _pod_spec(config: TrainingConfig, names: _Names, nodes: int, gpus: int) -> k8s.V1PodSpec:
    kube = config.kubernetes
    namespace = kube.namespace
    rendezvous = f"{names.job}-0.{names.service}.{namespace}.svc:{RENDEZVOUS_PORT}"
    command = [
        "torchrun",
        f"--nnodes={nodes}",
        f"--nproc-per-node={max(gpus, 1)}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={rendezvous}",
        f"--rdzv-id={names.job}",
        f"--rdzv-conf=join_timeout={RENDEZVOUS_JOIN_TIMEOUT_S}",
        # Kubernetes retries failed pods (backoffLimit); each retry resumes from a checkpoint.
        "--max-restarts=0",
        "--no-python",
        *TRAIN_COMMAND,
    ]
    amounts = {"cpu": kube.cpu, "memory": kube.memory}
    if gpus:
        amounts["nvidia.com/gpu"] = str(gpus)
    container = k8s.V1Container(
        name="trainer",
        image=kube.image,
        image_pull_policy="IfNotPresent",
        command=command,
        working_dir=SOURCE_DIR,
        ports=[k8s.V1ContainerPort(name="rendezvous", container_port=RENDEZVOUS_PORT)],
        env=[
            # torch would start one thread per node core in every rank otherwise.
            k8s.V1EnvVar(name="OMP_NUM_THREADS", value=_threads_per_rank(kube.cpu, gpus)),
            k8s.V1EnvVar(name="NCCL_DEBUG", value="WARN"),
        ],
        resources=k8s.V1ResourceRequirements(requests=dict(amounts), limits=dict(amounts)),
        security_context=k8s.V1SecurityContext(
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            run_as_non_root=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
        ),
        volume_mounts=[
            k8s.V1VolumeMount(name="config", mount_path=CONFIG_DIR, read_only=True),
            k8s.V1VolumeMount(name="checkpoints", mount_path=CHECKPOINT_DIR),
            k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),
            # NCCL and DataLoader workers exchange tensors through /dev/shm (64 MiB by default).
            k8s.V1VolumeMount(name="shm", mount_path="/dev/shm"),
        ],
    )
    return k8s.V1PodSpec(
        restart_policy="Never",
        subdomain=names.service,
        automount_service_account_token=False,
        security_context=k8s.V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=10001,
            run_as_group=10001,
            fs_group=10001,
            fs_group_change_policy="OnRootMismatch",
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        node_selector=dict(kube.gpu_node_selector) if gpus else None,
        tolerations=(
            [k8s.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]
            if gpus
            else None
        ),
        containers=[container],
        volumes=[
            k8s.V1Volume(
                name="config", config_map=k8s.V1ConfigMapVolumeSource(name=names.config_map)
            ),
            k8s.V1Volume(
                name="checkpoints",
                persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                    claim_name=names.claim
                ),
            ),
            k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit="8Gi")),
            k8s.V1Volume(
                name="shm", empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory", size_limit="8Gi")
            ),
        ],
    )


def _threads_per_rank(cpu: str, gpus: int) -> str:
    whole_cpus = int(cpu) if cpu.isdigit() else 1  # "500m" and the like: one thread
    return str(max(1, whole_cpus // max(gpus, 1)))


def _rank_status(pod: k8s.V1Pod) -> RankStatus:
    annotations = pod.metadata.annotations or {}
    index = annotations.get("batch.kubernetes.io/job-completion-index", "-1")
    statuses = (pod.status.container_statuses or []) if pod.status else []
    return RankStatus(
        index=int(index) if index.lstrip("-").isdigit() else -1,
        pod=pod.metadata.name,
        phase=(pod.status.phase if pod.status else None) or "Unknown",
        restarts=sum(s.restart_count or 0 for s in statuses),
        node=(pod.spec.node_name if pod.spec else None) or "",
    )


def _exists(read: Callable[[], Any]) -> bool:
    try:
        _call(read)
    except NotFound:
        return False
    return True


def _replace_or_create(create: Callable[[], Any], on_conflict: Callable[[], Any]) -> None:
    try:
        _call(create)
    except _Conflict:
        _call(on_conflict)


class _Conflict(RailDebugError):
    pass


def _call(request: Callable[[], Any], not_found: str | None = None) -> Any:
    """Run one API request; API errors become domain errors with a message a person can act on."""
    from urllib3.exceptions import HTTPError

    try:
        return request()
    except k8s.ApiException as error:
        if error.status == 404:
            raise NotFound(not_found or f"not found: {_reason(error)}") from None
        if error.status == 409:
            raise _Conflict(_reason(error)) from None
        if error.status in (401, 403):
            raise InvalidRequest(
                f"the cluster refused the request ({error.status}): {_reason(error)}; check that "
                "your kubeconfig user may create jobs, services, config maps and claims here"
            ) from None
        if error.status == 422:
            raise InvalidRequest(f"the cluster rejected the manifest: {_reason(error)}") from None
        raise NotReady(f"Kubernetes API error {error.status}: {_reason(error)}") from None
    except HTTPError as error:
        raise NotReady(f"cannot reach the Kubernetes API server: {error}") from None


def _reason(error: k8s.ApiException) -> str:
    try:
        body = yaml.safe_load(error.body or "") or {}
    except yaml.YAMLError:
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or error.reason or error.status)


def run_rank(config_path: Path) -> dict[str, Any]:
    """One torchrun rank of a Job pod: fine-tune, resuming from the latest complete checkpoint
    when an earlier attempt of this Job left one (a first attempt starts from scratch)."""
    from training.checkpoint import latest_checkpoint
    from training.config import load_training_config
    from training.sft import finetune

    config = load_training_config(config_path)
    resume = latest_checkpoint(config.run.output_dir / "checkpoints") is not None
    return finetune(config, resume=resume)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="one rank of a RailDebug training Job")
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        run_rank(args.config)
    except RailDebugError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
