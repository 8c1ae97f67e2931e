"""Fine-tuning mechanics on tiny random models: learning, exact resume, QLoRA on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from raildebug.errors import NotFound
from tests.support.training import TinyConfig
from training.reporting import read_metrics
from training.sft import finetune


def _losses(run: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r]


def test_loss_falls_on_a_memorizable_set(tiny_config: TinyConfig) -> None:
    config = tiny_config(
        data={"max_train_examples": 2, "max_heldout_examples": 2},
        lora={"target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"]},
        optimization={"max_steps": 15, "learning_rate": 0.02},
        checkpointing={"every_steps": 100},
    )
    summary = finetune(config)
    losses = _losses(config.run.output_dir)
    assert len(losses) == 15
    assert losses[-1] < 0.5 * losses[0], losses
    assert 0 < summary["trainable_pct"] < 100 and summary["tokens_per_s"] > 0
    assert (config.run.output_dir / "loss.png").stat().st_size > 1000
    assert (config.run.output_dir / "adapter" / "adapter_model.safetensors").is_file()
    saved = json.loads((config.run.output_dir / "summary.json").read_text())
    assert saved["eval_loss_before"] == summary["eval_loss_before"]


def test_resume_equals_an_uninterrupted_run(tiny_config: TinyConfig) -> None:
    settings = {
        "lora": {"dropout": 0.1},
        "optimization": {"max_steps": 4, "scheduler": "cosine", "warmup_steps": 1},
    }
    straight = tiny_config("straight", **settings)
    finetune(straight)
    interrupted = tiny_config("interrupted", **settings)
    stopped = finetune(interrupted, stop_after=2)
    assert stopped["stopped_at_step"] == 2
    finetune(interrupted, resume=True)

    assert _losses(interrupted.run.output_dir) == pytest.approx(_losses(straight.run.output_dir))
    a = load_file(straight.run.output_dir / "adapter" / "adapter_model.safetensors")
    b = load_file(interrupted.run.output_dir / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


def test_resume_without_checkpoint_is_a_clear_error(tiny_config: TinyConfig) -> None:
    with pytest.raises(NotFound, match="nothing to resume"):
        finetune(tiny_config(), resume=True)


def test_qlora_trains_with_4bit_base_on_cpu(tiny_config: TinyConfig) -> None:
    lora = tiny_config("lora", optimization={"max_steps": 2})
    qlora = tiny_config("qlora", lora={"method": "qlora"}, optimization={"max_steps": 2})
    full = finetune(lora)
    quantized = finetune(qlora)
    assert quantized["trainable_params"] == full["trainable_params"]
    # NF4 with double quantization: about a quarter byte per weight vs 4 bytes (float32)
    assert quantized["adapted_linear_weight_bytes"] < 0.2 * full["adapted_linear_weight_bytes"]
    assert all(loss == loss and loss > 0 for loss in _losses(qlora.run.output_dir))
    assert quantized["eval_loss_before"] == pytest.approx(full["eval_loss_before"], rel=0.05)
