"""The fine-tuning loop: LoRA/QLoRA on answer tokens, held-out evaluation, exact resume.

The same function runs as one CPU process or as one rank of torchrun (FSDP2). Each optimizer
step takes the next `batch_size * grad_accum_steps * world_size` examples of a seeded order;
losses are normalised by the step's answer-token count over all ranks, so any world size
computes the same update as one process with the same global batch.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from raildebug.errors import InvalidRequest, NotFound
from training.checkpoint import (
    TrainerState,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from training.config import TrainingConfig
from training.dataset.formatting import TokenizedExample, collate
from training.dataset.prepare import load_run_data, tokenize_all
from training.distributed import World, all_sum, barrier, close_world, init_world, shard
from training.losses import answer_logits, cross_entropy_sum
from training.modeling import (
    add_adapter,
    base_dir,
    linear_weight_bytes,
    load_model,
    load_tokenizer,
    materialize_base,
    trainable_parameters,
)
from training.reporting import MetricsLog, peak_memory_mib, plot_losses, write_json

ADAPTER_DIRNAME = "adapter"
_SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def finetune(
    config: TrainingConfig, resume: bool = False, stop_after: int | None = None
) -> dict[str, Any]:
    """Train, evaluate and save the adapter; returns the run summary (also summary.json).

    `stop_after` ends the session after that step's checkpoint (preemptible schedules); a
    later `resume=True` continues exactly where it stopped.
    """
    world = init_world(config.distributed)
    try:
        return _finetune(config, world, resume, stop_after)
    finally:
        close_world(world)


def _finetune(
    config: TrainingConfig, world: World, resume: bool, stop_after: int | None
) -> dict[str, Any]:
    if world.distributed and config.lora.method == "qlora":
        raise InvalidRequest(
            "QLoRA under FSDP is not supported with the installed bitsandbytes: its 4-bit "
            "weights (Params4bit) have no FSDP2 all-gather hooks, so a gathered shard loses its "
            "packing and quantization state; use lora.method: lora with FSDP, or QLoRA on one "
            "process"
        )
    seed_everything(config.run.seed)
    out = config.run.output_dir
    checkpoints = out / "checkpoints"
    latest = latest_checkpoint(checkpoints) if resume else None
    if resume and latest is None:
        raise NotFound(f"nothing to resume: no complete checkpoint under {checkpoints}")
    if world.is_main:
        materialize_base(config)
    barrier(world)
    base = base_dir(config)
    tokenizer = load_tokenizer(base)
    data = load_run_data(config)
    train = tokenize_all(config, tokenizer, data.train)
    heldout = tokenize_all(config, tokenizer, data.heldout)

    model = add_adapter(load_model(base, config.model.dtype, config.lora), config.lora)
    trainable, total = trainable_parameters(model)
    adapted_bytes = linear_weight_bytes(model, list(config.lora.target_modules))
    if config.lora.method == "lora":
        model.to(world.device)
    if world.distributed:
        shard(model)
    opt = config.optimization
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=opt.learning_rate,
        weight_decay=opt.weight_decay,
    )
    from transformers import get_scheduler

    scheduler = get_scheduler(
        _SCHEDULERS[opt.scheduler], optimizer, opt.warmup_steps, opt.max_steps
    )
    state = TrainerState()
    if latest is not None:
        state = load_checkpoint(latest, world, model, optimizer, scheduler)
    metrics = MetricsLog(
        out / "metrics.jsonl", state.step if latest is not None else None, world.is_main
    )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    if state.eval_loss_before is None:
        state.eval_loss_before = evaluate(model, heldout, config.eval.batch_size, pad, world)
        metrics.write(step=0, eval_loss=state.eval_loss_before)

    model.train()
    order = DataOrder(len(train), config.run.seed)
    per_step = opt.batch_size * opt.grad_accum_steps * world.size
    last = min(opt.max_steps, stop_after) if stop_after else opt.max_steps
    bar = tqdm(total=opt.max_steps, initial=state.step, desc="fine-tune", disable=not world.is_main)
    eval_loss = state.eval_loss_before
    while state.step < last:
        started = time.perf_counter()
        indices = order.take(state.cursor, per_step)
        micro = [
            collate([train[i] for i in _rank_slice(chunk, world, opt.batch_size)], pad)
            for chunk in _chunks(indices, opt.batch_size * world.size)
        ]
        answer_total, tokens = all_sum(
            world, sum(b.answer_tokens for b in micro), sum(b.tokens for b in micro)
        )
        loss_sum = 0.0
        for batch in micro:
            logits, targets = answer_logits(model, _to(batch, world.device))
            ce = cross_entropy_sum(logits, targets)
            # times world.size: FSDP averages gradients over ranks, we want the global mean
            (ce / answer_total * world.size).backward()  # type: ignore[no-untyped-call]
            loss_sum += float(ce.detach())
        grad_norm = torch.nn.utils.clip_grad_norm_(
            [p for p in model.parameters() if p.requires_grad], opt.max_grad_norm
        )
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state.step += 1
        state.cursor += per_step
        (loss_total,) = all_sum(world, loss_sum)
        elapsed = time.perf_counter() - started
        state.train_seconds += elapsed
        state.tokens += int(tokens)
        loss = loss_total / answer_total
        metrics.write(
            step=state.step,
            loss=loss,
            lr=scheduler.get_last_lr()[0],
            grad_norm=float(_full(grad_norm)),
            tokens=int(tokens),
            tokens_per_s=tokens / elapsed,
        )
        bar.set_postfix(loss=f"{loss:.3f}")
        bar.update(1)
        if state.step % config.eval.every_steps == 0 or state.step == opt.max_steps:
            eval_loss = evaluate(model, heldout, config.eval.batch_size, pad, world)
            if world.is_main:
                metrics.write(step=state.step, eval_loss=eval_loss)
        if state.step % config.checkpointing.every_steps == 0 or state.step in (
            last,
            opt.max_steps,
        ):
            save_checkpoint(checkpoints, world, model, optimizer, scheduler, state)
            if world.is_main:
                prune_checkpoints(checkpoints, config.checkpointing.keep_last)
    bar.close()
    if state.step < opt.max_steps:
        return {"stopped_at_step": state.step, "checkpoint": str(latest_checkpoint(checkpoints))}

    save_adapter(model, out / ADAPTER_DIRNAME, world)
    summary = {
        "run": config.run.name,
        "method": config.lora.method,
        "world_size": world.size,
        "steps": state.step,
        "train_examples": len(train),
        "heldout_examples": len(heldout),
        "trainable_params": trainable,
        "total_params": total,
        "trainable_pct": 100.0 * trainable / total,
        "adapted_linear_weight_bytes": adapted_bytes,
        "eval_loss_before": state.eval_loss_before,
        "eval_loss_after": eval_loss,
        "eval_loss_reduction_pct": 100.0 * (1 - eval_loss / state.eval_loss_before),
        "tokens": state.tokens,
        "tokens_per_s": state.tokens / max(state.train_seconds, 1e-9),
        "train_seconds": state.train_seconds,
        **peak_memory_mib(),
    }
    if world.is_main:
        write_json(out / "summary.json", summary)
        plot_losses(out / "metrics.jsonl", out / "loss.png", f"{config.run.name}: fine-tune")
    barrier(world)
    return summary


class DataOrder:
    """A fresh seeded permutation per epoch; position `cursor` is fully determined by the seed."""

    def __init__(self, size: int, seed: int) -> None:
        self._size = size
        self._seed = seed
        self._epochs: dict[int, list[int]] = {}

    def take(self, cursor: int, count: int) -> list[int]:
        return [self._at(c) for c in range(cursor, cursor + count)]

    def _at(self, cursor: int) -> int:
        epoch, position = divmod(cursor, self._size)
        if epoch not in self._epochs:
            generator = torch.Generator().manual_seed(self._seed * 1_000_003 + epoch)
            self._epochs[epoch] = torch.randperm(self._size, generator=generator).tolist()
        return self._epochs[epoch][position]


@torch.no_grad()
def evaluate(
    model: Any, examples: list[TokenizedExample], batch_size: int, pad: int, world: World
) -> float:
    """Mean cross-entropy per answer token. Every rank runs the same number of forwards
    (FSDP needs them in lockstep); a rank with nothing left re-runs one example at weight 0."""
    was_training = model.training
    model.eval()
    ce_sum = count = 0.0
    per_batch = batch_size * world.size
    for start in range(0, len(examples), per_batch):
        chunk = list(range(start, min(start + per_batch, len(examples))))
        mine = _rank_slice(chunk, world, batch_size)
        weight = 1.0 if mine else 0.0
        batch = collate([examples[i] for i in mine or [0]], pad)
        logits, targets = answer_logits(model, _to(batch, world.device))
        ce_sum += weight * float(cross_entropy_sum(logits, targets))
        count += weight * batch.answer_tokens
    ce_total, tokens = all_sum(world, ce_sum, count)
    model.train(was_training)
    return ce_total / max(tokens, 1.0)


def save_adapter(model: Any, target: Path, world: World) -> None:
    """Gather the (possibly sharded) adapter and write it as a regular PEFT adapter."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(
        model,
        options=StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True),
    )
    if world.is_main:
        model.save_pretrained(target, state_dict=state)
    barrier(world)


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _rank_slice(chunk: list[int], world: World, batch_size: int) -> list[int]:
    return chunk[world.rank * batch_size : (world.rank + 1) * batch_size]


def _to(batch: Any, device: torch.device) -> Any:
    if device.type == "cpu":
        return batch
    from dataclasses import replace

    return replace(
        batch,
        input_ids=batch.input_ids.to(device),
        attention_mask=batch.attention_mask.to(device),
        position_ids=batch.position_ids.to(device),
        labels=batch.labels.to(device),
    )


def _full(value: Any) -> float:
    """clip_grad_norm_ returns a DTensor under FSDP."""
    full = value.full_tensor() if hasattr(value, "full_tensor") else value
    result = float(full)
    return result if math.isfinite(result) else float("nan")
