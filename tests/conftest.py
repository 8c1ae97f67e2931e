"""Fixtures shared by all tests: where the packaged model is assembled, repository paths."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CORPUS = REPO_ROOT / "data" / "sample-corpus"
# Assembled once per machine (~250 MB) and reused by every test session.
MODEL_CACHE = Path.home() / ".cache" / "raildebug" / "models"


@pytest.fixture(scope="session")
def gemma_gguf() -> Path:
    from services.inference.model_files import resolve_model_path

    return resolve_model_path(None, MODEL_CACHE)


@pytest.fixture(scope="session")
def sample_corpus() -> Path:
    return SAMPLE_CORPUS
