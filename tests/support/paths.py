"""Repository paths and the per-machine model cache shared by the tests."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CORPUS = REPO_ROOT / "data" / "sample-corpus"
# Assembled once per machine (~250 MB) and reused by every test session.
MODEL_CACHE = Path.home() / ".cache" / "raildebug" / "models"
