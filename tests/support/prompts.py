"""Seed directories for the prompt registry holding only some of the shipped versions."""

from __future__ import annotations

import shutil
from pathlib import Path

from services.orchestrator.prompting import PROMPTS_DIR


def shipped_subset(directory: Path, *refs: str) -> Path:
    """`directory` holding only the shipped template files `refs` ("rail_fix@1", ...): what
    `PromptRegistry(..., seed_from=...)` saw before the later versions shipped."""
    directory.mkdir(parents=True, exist_ok=True)
    for ref in refs:
        shutil.copy(PROMPTS_DIR / f"{ref}.toml", directory / f"{ref}.toml")
    return directory
