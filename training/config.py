"""The YAML config of one training run. Every option has a documented default.

Validation happens when the file is loaded, so a bad config fails before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from raildebug.errors import InvalidRequest


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo in a key is an error, not a silent default


class RunSection(Section):
    name: str = Field("raildebug-sft", pattern=r"^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$",
                      description="Run name; also the Kubernetes Job name (DNS-1123 label).")
    seed: int = Field(1234, description="Seeds Python, NumPy and torch for reproducible runs.")
    output_dir: Path = Field(Path("runs/raildebug-sft"),
                             description="Checkpoints, metrics, plots and exports go here.")


class DistributedSection(Section):
    nodes: int = Field(1, ge=1, description="Machines (pods of the Indexed Job).")
    gpus_per_node: int = Field(0, ge=0, description="Processes per node; 0 runs one CPU process.")
    backend: Literal["auto", "gloo", "nccl"] = Field(
        "auto", description="auto: nccl with GPUs, gloo without."
    )


class TrainingConfig(Section):
    run: RunSection = Field(default_factory=RunSection)
    distributed: DistributedSection = Field(default_factory=DistributedSection)


def load_training_config(path: Path) -> TrainingConfig:
    """Parse and validate a run config; errors name the file and the offending keys."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise InvalidRequest(f"training config {path} does not exist") from None
    except yaml.YAMLError as error:
        raise InvalidRequest(f"training config {path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise InvalidRequest(f"training config {path} must be a mapping of sections")
    try:
        return TrainingConfig.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise InvalidRequest(f"training config {path}: {problems}") from None
