"""A retried training pod resumes from the checkpoint an earlier attempt left, not from step 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO_ROOT
from training.config import load_training_config
from training.k8s_job import run_rank
from training.sft import finetune


def _step_lines(metrics: Path, last_step: int) -> list[str]:
    """The training-step records (not evaluations) up to `last_step`, verbatim."""
    return [
        line
        for line in metrics.read_text().splitlines()
        if "loss" in (record := json.loads(line)) and record["step"] <= last_step
    ]


@pytest.mark.model  # fine-tunes the tiny random Gemma of tiny-cpu.yaml
def test_retried_rank_continues_from_the_latest_checkpoint(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO_ROOT / "training/configs/tiny-cpu.yaml").read_text())
    config["run"]["output_dir"] = str(tmp_path / "run")
    config_path = tmp_path / "run.yaml"
    config_path.write_text(yaml.safe_dump(config))

    # First attempt: the pod dies right after its step-10 checkpoint.
    finetune(load_training_config(config_path), stop_after=10)
    metrics = tmp_path / "run" / "metrics.jsonl"
    first_attempt = _step_lines(metrics, 10)
    assert len(first_attempt) == 10

    summary = run_rank(config_path)  # what the Job's retried pod runs

    assert summary["steps"] == config["optimization"]["max_steps"]
    # Steps 1-10 were not trained again: their records (with their measured throughput,
    # which a re-run would change) are exactly those of the first attempt, once each.
    assert _step_lines(metrics, 10) == first_attempt
    assert (tmp_path / "run" / "checkpoints" / "step-000020").is_dir()
