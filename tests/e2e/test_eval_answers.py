"""`raildebug eval answers` end to end: real services, the default model, three questions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.cli.eval_answers import SETS
from tests.support.paths import MODEL_CACHE, REPO_ROOT
from training.answer_scoring import load_questions

pytestmark = pytest.mark.e2e

SUMMARY_SHARES = ("citation_rate", "citation_precision", "nugget_recall", "abstention")


def test_eval_answers_scores_three_questions_through_the_real_services(
    default_model_gguf: Path, tmp_path: Path
) -> None:
    out, plot = tmp_path / "answers.json", tmp_path / "answers.png"
    env = {**os.environ, "RAILDEBUG_INFERENCE_MODEL_CACHE_DIR": str(MODEL_CACHE)}
    assert default_model_gguf.is_file()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "apps.cli.main",
            "eval",
            "answers",
            "--sets",
            "sample",
            "--limit",
            "3",
            "--models",
            "qwen2.5-coder-0.5b-instruct-q4_0=@2",
            "--max-tokens",
            "96",
            "--json",
            str(out),
            "--plot",
            str(plot),
            "--work-dir",
            str(tmp_path / "work"),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "qwen2.5-coder-0.5b-instruct-q4_0 @2" in result.stdout, result.stdout

    results = json.loads(out.read_text())
    config = results["sample"]["qwen2.5-coder-0.5b-instruct-q4_0 @2"]
    summary, answers = config["summary"], config["answers"]
    expected = [q.qid for q in load_questions(SETS["sample"].questions)[:3]]
    assert [a["qid"] for a in answers] == expected
    assert summary["questions"] == 3 and summary["errors"] == 0
    for answer in answers:
        assert answer["answer"].strip(), "every question got an answer"
        assert answer["passages"], "the Debug stream carried the retrieved context"
        assert answer["model"] == "qwen2.5-coder-0.5b-instruct-q4_0"
        assert answer["prompt_version"] == "rail_fix@2"
        assert 0 < answer["time_to_first_token_ms"] <= answer["latency_ms"]
    for share in SUMMARY_SHARES:
        assert 0.0 <= summary[share] <= 1.0
    assert summary["decode_tokens_per_s"] > 0 and summary["prefill_tokens_per_s"] > 0
    assert plot.stat().st_size > 10_000, "the comparison plot was written"
