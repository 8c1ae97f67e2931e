"""Tiny random Gemma 3 training configurations (packaged tokenizer cut to the dataset's tokens):
fast, real transformers/peft/llama.cpp code paths, no quality expectations."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.config import TrainingConfig

# The `tiny_config` fixture: make(name="run", **sections) -> TrainingConfig with the tiny base.
TinyConfig = Callable[..., TrainingConfig]


def tiny_training_config(output_dir: Path, **sections: Any) -> TrainingConfig:
    """A tiny run writing to `output_dir`; each keyword updates one section of the config."""
    raw: dict[str, Any] = {
        "run": {"name": "tiny-test", "seed": 7, "output_dir": str(output_dir)},
        "model": {"source": "tiny", "tiny": {"hidden_size": 64, "num_hidden_layers": 2}},
        "data": {"max_seq_len": 256, "max_train_examples": 16, "max_heldout_examples": 4},
        "lora": {"dropout": 0.0},
        "optimization": {
            "learning_rate": 0.01,
            "warmup_steps": 0,
            "max_steps": 4,
            "batch_size": 2,
            "scheduler": "constant",
        },
        "eval": {"every_steps": 100, "batch_size": 4},
        "checkpointing": {"every_steps": 2, "keep_last": 5},
        "parity": {
            "prompts": 2,
            "max_prompt_tokens": 128,
            "check_serving": False,
            "max_perplexity_ratio": 1.5,
        },
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return TrainingConfig.model_validate(raw)
