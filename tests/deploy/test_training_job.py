"""`raildebug train submit/status`: the rendered Indexed Job (schemas + policy), and submission and
status through the real kubernetes client against a fake API server."""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from apps.cli.train_k8s import add_kubernetes_commands
from tests.deploy.k8s_policy import gpu_problems, security_problems
from tests.support.fake_apiserver import FakeApiServer
from tests.support.k8s import KUBERNETES_VERSION
from training.config import TrainingConfig

RUN = "rail-sft-k8s"
NAMESPACE = "raildebug"


def write_config(tmp_path: Path, **sections: dict[str, Any]) -> Path:
    raw: dict[str, Any] = {"run": {"name": RUN}, **sections}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def train(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="raildebug train")
    add_kubernetes_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


def dry_run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, dict[str, Any]]:
    assert train("submit", *argv, "--dry-run") == 0
    return {doc["kind"]: doc for doc in yaml.safe_load_all(capsys.readouterr().out)}


def test_multi_node_gpu_job_validates_and_meets_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, distributed={"nodes": 2, "gpus_per_node": 4, "backend": "nccl"})
    docs = dry_run(capsys, "--config", str(config))
    assert set(docs) == {"PersistentVolumeClaim", "ConfigMap", "Service", "Job"}
    for doc in docs.values():
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        assert doc["metadata"]["namespace"] == NAMESPACE

    job, service = docs["Job"], docs["Service"]
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 2
    assert spec["backoffLimit"] == 3 * 2 and spec["ttlSecondsAfterFinished"] == 86400
    pod = spec["template"]["spec"]
    assert security_problems("Job", pod) == [] and gpu_problems("Job", pod) == []
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert pod["restartPolicy"] == "Never"

    # torchrun c10d rendezvous at pod 0, through the headless Service's stable DNS names
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    assert pod["subdomain"] == service["metadata"]["name"]
    command = pod["containers"][0]["command"]
    endpoint = f"{RUN}-0.{service['metadata']['name']}.{NAMESPACE}.svc:29400"
    assert command[0] == "torchrun"
    for flag in ("--nnodes=2", "--nproc-per-node=4", "--rdzv-backend=c10d", "--no-python"):
        assert flag in command
    assert f"--rdzv-endpoint={endpoint}" in command

    # checkpoints on a claim every rank shares, which the run's outputs go to
    claim = docs["PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["checkpoints"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    pod_config = TrainingConfig.model_validate(
        yaml.safe_load(docs["ConfigMap"]["data"]["run.yaml"])
    )
    assert pod_config.run.output_dir.is_relative_to(mounts["checkpoints"])
    assert (pod_config.distributed.nodes, pod_config.distributed.gpus_per_node) == (2, 4)
    assert str(pod_config.data.train_path).startswith("/opt/raildebug/src/training/")
    config_path = f"{mounts['config']}/run.yaml"
    assert command[command.index("--config") + 1] == config_path


def test_cpu_run_has_no_gpu_placement_and_flags_override_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, distributed={"nodes": 1, "gpus_per_node": 8})
    docs = dry_run(capsys, "--config", str(config), "--nodes", "3", "--gpus-per-node", "0")
    pod = docs["Job"]["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod and "tolerations" not in pod
    assert "nvidia.com/gpu" not in str(pod["containers"][0]["resources"])
    assert gpu_problems("Job", pod) == []
    assert docs["Job"]["spec"]["parallelism"] == 3
    assert "--nproc-per-node=1" in pod["containers"][0]["command"]


@pytest.mark.parametrize(
    ("distributed", "argv", "message"),
    [
        ({"backend": "nccl"}, ("--gpus-per-node", "0"), "nccl but the run asks for no GPUs"),
        ({}, ("--nodes", "0"), "--nodes must be at least 1"),
    ],
)
def test_bad_requests_fail_before_anything_is_submitted(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    distributed: dict[str, Any],
    argv: tuple[str, ...],
    message: str,
) -> None:
    config = write_config(tmp_path, distributed=distributed)
    assert train("submit", "--config", str(config), *argv, "--dry-run") == 1
    assert message in capsys.readouterr().err


def test_files_the_pods_cannot_see_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "my-train.jsonl"
    mine.write_text("{}\n", encoding="utf-8")
    config = write_config(tmp_path, data={"train_path": str(mine)})
    assert train("submit", "--config", str(config), "--dry-run") == 1
    err = capsys.readouterr().err
    assert "data.train_path" in err and "cannot see" in err


def test_missing_config_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train("submit", "--config", str(tmp_path / "nope.yaml"), "--dry-run") == 1
    assert "does not exist" in capsys.readouterr().err


def test_submit_creates_the_objects_and_lets_the_job_own_its_companions(
    tmp_path: Path, fake_apiserver: FakeApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, distributed={"nodes": 2, "gpus_per_node": 1})
    assert train("submit", "--config", str(config)) == 0
    assert f"submitted job {NAMESPACE}/{RUN}" in capsys.readouterr().out
    created = [path.rsplit("/", 1)[-1] for _, path in fake_apiserver.created()]
    assert created == ["persistentvolumeclaims", "configmaps", "services", "jobs"]
    job = fake_apiserver.get("jobs", NAMESPACE, RUN)
    assert job is not None and job["spec"]["completionMode"] == "Indexed"
    for plural, name in (("configmaps", f"{RUN}-config"), ("services", f"rdzv-{RUN}")):
        obj = fake_apiserver.get(plural, NAMESPACE, name)
        assert obj is not None
        (owner,) = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("Job", RUN, job["metadata"]["uid"])
    claim = fake_apiserver.get("persistentvolumeclaims", NAMESPACE, f"{RUN}-checkpoints")
    assert claim is not None and "ownerReferences" not in claim["metadata"]


def test_resubmitting_keeps_checkpoints_but_refuses_a_running_job(
    tmp_path: Path, fake_apiserver: FakeApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    claim = {"metadata": {"name": f"{RUN}-checkpoints", "namespace": NAMESPACE, "uid": "old"}}
    fake_apiserver.put("persistentvolumeclaims", claim)
    config = write_config(tmp_path)
    assert train("submit", "--config", str(config)) == 0
    created = [path.rsplit("/", 1)[-1] for _, path in fake_apiserver.created()]
    assert "persistentvolumeclaims" not in created, "the claim with the checkpoints is reused"
    kept = fake_apiserver.get("persistentvolumeclaims", NAMESPACE, f"{RUN}-checkpoints")
    assert kept is not None and kept["metadata"]["uid"] == "old"
    capsys.readouterr()

    assert train("submit", "--config", str(config)) == 1
    err = capsys.readouterr().err
    assert f"training job {RUN} already exists" in err and "delete job" in err


def test_permission_errors_say_what_to_check(
    tmp_path: Path, fake_apiserver: FakeApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_apiserver.forbidden_namespaces.add(NAMESPACE)
    assert train("submit", "--config", str(write_config(tmp_path))) == 1
    err = capsys.readouterr().err
    assert "refused the request (403)" in err and "may create jobs" in err


def test_no_cluster_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert train("status", RUN) == 1
    assert "no Kubernetes cluster configured" in capsys.readouterr().err


def seed_job(server: FakeApiServer, status: dict[str, Any]) -> None:
    labels = {"raildebug.io/training-run": RUN}
    server.put(
        "jobs",
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": RUN, "namespace": NAMESPACE, "labels": labels},
            "spec": {"completions": 2, "template": {"spec": {"containers": []}}},
            "status": status,
        },
    )
    for index, (phase, restarts) in enumerate((("Running", 0), ("Pending", 1))):
        server.put(
            "pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{RUN}-{index}-abcde",
                    "namespace": NAMESPACE,
                    "labels": labels,
                    "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
                },
                "spec": {"nodeName": f"gpu-node-{index}", "containers": []},
                "status": {
                    "phase": phase,
                    "containerStatuses": [
                        {
                            "name": "trainer",
                            "restartCount": restarts,
                            "ready": phase == "Running",
                            "image": "x",
                            "imageID": "",
                        }
                    ],
                },
            },
        )


def test_status_shows_the_job_and_each_rank(
    fake_apiserver: FakeApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_job(fake_apiserver, {"active": 2, "failed": 1})
    assert train("status", RUN) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{NAMESPACE}/{RUN}: Running  nodes 2  active 2")
    assert "failed 1" in lines[0]
    assert lines[1].split() == [
        "rank",
        "0",
        f"{RUN}-0-abcde",
        "Running",
        "restarts",
        "0",
        "node",
        "gpu-node-0",
    ]
    assert lines[2].split()[:4] == ["rank", "1", f"{RUN}-1-abcde", "Pending"]


def test_status_of_a_failed_job_exits_non_zero_with_the_reason(
    fake_apiserver: FakeApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = {
        "type": "Failed",
        "status": "True",
        "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit",
    }
    seed_job(fake_apiserver, {"failed": 6, "conditions": [failed]})
    assert train("status", RUN) == 1
    out = capsys.readouterr().out
    assert ": Failed" in out and "backoff limit" in out


def test_status_of_an_unknown_job(
    fake_apiserver: FakeApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train("status", "nope") == 1
    assert "training job nope not found in namespace raildebug" in capsys.readouterr().err


def test_follow_reports_changes_until_the_job_completes(
    fake_apiserver: FakeApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_job(fake_apiserver, {"active": 2})

    def complete_later() -> None:
        time.sleep(0.5)
        done = {"type": "Complete", "status": "True", "reason": "CompletionsReached"}
        seed_job(fake_apiserver, {"succeeded": 2, "conditions": [done]})

    finisher = threading.Thread(target=complete_later)
    finisher.start()
    assert train("status", RUN, "--follow", "--interval", "0.05") == 0
    finisher.join()
    headers = [line for line in capsys.readouterr().out.splitlines() if line.startswith(NAMESPACE)]
    assert [h.split()[1] for h in headers] == ["Running", "Succeeded"]
