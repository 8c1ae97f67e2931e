"""The layer contract in `make lint` (import-linter) keeps main clean and fails on a broken layer.

Each case copies the packages to a temporary tree, adds one import that breaks a layer, and runs
the same `lint-imports` configuration there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("apps", "raildebug", "services", "training")

pytestmark = pytest.mark.service  # runs lint-imports in its own process


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "250"}
    return subprocess.run(
        [str(executable), str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _add_import(module: Path, statement: str) -> None:
    module.write_text(module.read_text() + f"\n{statement}  # deliberately breaks a layer\n")


def test_main_keeps_every_contract(tree: Path) -> None:
    result = _lint_imports(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_floor_importing_a_service_is_a_cycle_the_contract_refuses(tree: Path) -> None:
    # services.orchestrator imports raildebug.errors; this closes the loop.
    _add_import(tree / "raildebug" / "errors.py", "import services.orchestrator.models")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "raildebug.errors -> services.orchestrator.models" in result.stdout


def test_one_service_importing_another_is_refused(tree: Path) -> None:
    _add_import(tree / "services" / "orchestrator" / "models.py", "import services.retriever.index")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "services.orchestrator is not allowed to import services.retriever" in result.stdout


def test_offline_tools_may_not_import_the_cli(tree: Path) -> None:
    _add_import(tree / "training" / "config.py", "import apps.cli.main")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "training.config -> apps.cli.main" in result.stdout


def test_a_service_core_may_not_import_grpc(tree: Path) -> None:
    _add_import(tree / "services" / "retriever" / "index.py", "import grpc")
    result = _lint_imports(tree)
    assert result.returncode != 0
    assert "services.retriever.index -> grpc" in result.stdout
