"""Step checkpoints that resume exactly: adapter weights and optimizer state (sharded through
torch.distributed.checkpoint, so any world size can write and read them), scheduler, every
rank's RNG state and the data cursor."""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_state_dict,
    set_state_dict,
)
from torch.distributed.checkpoint.state_dict_loader import load as dcp_load
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save

from raildebug.errors import NotFound
from training.distributed import World, barrier

_OPTIONS = StateDictOptions(ignore_frozen_params=True)  # the adapter, not the frozen base
_LOAD_OPTIONS = StateDictOptions(ignore_frozen_params=True, strict=False)  # base stays as loaded
_DONE = "trainer_state.json"  # written last: a directory without it is an interrupted save


@dataclass
class TrainerState:
    step: int = 0
    cursor: int = 0  # examples consumed, over all ranks, in the seeded order
    eval_loss_before: float | None = None
    tokens: int = 0
    train_seconds: float = 0.0


def save_checkpoint(
    directory: Path, world: World, model: Any, optimizer: Any, scheduler: Any, state: TrainerState
) -> Path:
    target = directory / f"step-{state.step:06d}"
    if world.is_main and target.exists():
        shutil.rmtree(target)
    barrier(world)
    model_state, optim_state = get_state_dict(model, optimizer, options=_OPTIONS)
    dcp_save({"model": model_state, "optim": optim_state}, checkpoint_id=str(target / "shards"))
    torch.save(_rng_state(), target / f"rng-rank{world.rank}.pt")
    barrier(world)
    if world.is_main:
        torch.save(scheduler.state_dict(), target / "scheduler.pt")
        (target / _DONE).write_text(json.dumps(asdict(state)), encoding="utf-8")
    barrier(world)
    return target


def latest_checkpoint(directory: Path) -> Path | None:
    done = sorted(p.parent for p in directory.glob(f"step-*/{_DONE}"))
    return done[-1] if done else None


def load_checkpoint(
    path: Path, world: World, model: Any, optimizer: Any, scheduler: Any
) -> TrainerState:
    if not (path / _DONE).is_file():
        raise NotFound(f"{path} is not a complete checkpoint (no {_DONE})")
    model_state, optim_state = get_state_dict(model, optimizer, options=_OPTIONS)
    loaded: dict[str, Any] = {"model": model_state, "optim": optim_state}
    dcp_load(loaded, checkpoint_id=str(path / "shards"))
    set_state_dict(
        model,
        optimizer,
        model_state_dict=loaded["model"],
        optim_state_dict=loaded["optim"],
        options=_LOAD_OPTIONS,
    )
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    rng = path / f"rng-rank{world.rank}.pt"
    if rng.is_file():  # a different world size resumes with fresh RNG on the new ranks
        _set_rng_state(torch.load(rng, weights_only=False))
    return TrainerState(**json.loads((path / _DONE).read_text(encoding="utf-8")))


def prune_checkpoints(directory: Path, keep_last: int) -> None:
    done = sorted(p.parent for p in directory.glob(f"step-*/{_DONE}"))
    for old in done[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


def _rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
