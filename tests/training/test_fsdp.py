"""The same training step under torchrun with FSDP2 on 2 CPU processes (gloo): it matches one
process with the same global batch, and resumes from sharded checkpoints after a rank is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from tests.support.training import TinyConfig
from training.config import TrainingConfig
from training.reporting import read_metrics
from training.sft import finetune


def _torchrun(config: TrainingConfig, tmp_path: Path, *extra: str) -> subprocess.Popen[bytes]:
    path = tmp_path / f"{config.run.name}-{len(list(tmp_path.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")), encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "apps.cli.main",
        "train",
        "finetune",
        "--config",
        str(path),
        *extra,
    ]
    log = (tmp_path / f"{path.stem}.log").open("wb")
    return subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )


def _losses(config: TrainingConfig) -> list[float]:
    return [r["loss"] for r in read_metrics(config.run.output_dir / "metrics.jsonl") if "loss" in r]


def _rank_process(launcher: subprocess.Popen[bytes], rank: str) -> psutil.Process:
    for child in psutil.Process(launcher.pid).children(recursive=True):
        try:
            if child.environ().get("RANK") == rank:
                return child
        except psutil.NoSuchProcess:
            continue
    raise AssertionError(f"rank {rank} not found")


@pytest.mark.service  # torchrun launches the ranks as processes
@pytest.mark.timeout(900)
def test_fsdp_matches_one_process_and_resumes_after_a_killed_rank(
    tiny_config: TinyConfig, tmp_path: Path
) -> None:
    steps = {"max_steps": 6, "scheduler": "cosine", "warmup_steps": 1}
    single = tiny_config("single", optimization={**steps, "batch_size": 4})
    finetune(single)
    sharded = tiny_config(
        "sharded", optimization={**steps, "batch_size": 2}, checkpointing={"every_steps": 2}
    )

    launcher = _torchrun(sharded, tmp_path)
    first = sharded.run.output_dir / "checkpoints" / "step-000002" / "trainer_state.json"
    deadline = time.monotonic() + 600
    while not first.exists():
        assert launcher.poll() is None, (tmp_path / "sharded-0.log").read_text()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    _rank_process(launcher, "1").send_signal(signal.SIGKILL)
    assert launcher.wait(timeout=300) != 0
    assert not (sharded.run.output_dir / "adapter").exists()

    resumed = _torchrun(sharded, tmp_path, "--resume")
    assert resumed.wait(timeout=600) == 0, (tmp_path / "sharded-1.log").read_text()[-3000:]
    assert len(_losses(sharded)) == 6
    assert _losses(sharded) == pytest.approx(_losses(single), rel=1e-4)
    shards = list((first.parent / "shards").glob("*.distcp"))
    assert len(shards) == 2  # one file per rank: the adapter and optimizer state are sharded
