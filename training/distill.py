"""Distillation: the fine-tuned model teaches a layer-pruned copy of itself.

The teacher answers training questions greedily and keeps its top-k logits at every answer
position; the student (same tokenizer, fewer layers) learns from alpha*T^2*KL + (1-alpha)*CE.
The same student trained with CE only is the ablation. The student is exported to GGUF through
the same parity gate as the fine-tuned model.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from raildebug.errors import InvalidRequest
from training.config import DistillationSection, TrainingConfig
from training.dataset.formatting import IGNORE, collate, keep_tail
from training.dataset.prepare import load_run_data, tokenize_all
from training.distributed import World
from training.layer_selection import (
    block_influence,
    llama_cpp_layer_types,
    most_influential_layers,
)
from training.losses import answer_logits, distillation_loss_sum
from training.modeling import base_dir, load_model, load_tokenizer
from training.reporting import MetricsLog, plot_losses, write_json
from training.sft import DataOrder, evaluate, seed_everything
from training.teacher_answers import (
    TeacherAnswer,
    answers_key,
    generate_answers,
    load_answers,
    save_answers,
)

_SINGLE = World(0, 1, torch.device("cpu"))


def prune_layers(model: Any, keep: list[int]) -> Any:
    """A copy of `model` with only the decoder layers in `keep` (embeddings, norms shared)."""
    layers = model.model.layers
    if not keep or any(not 0 <= i < len(layers) for i in keep) or len(set(keep)) != len(keep):
        raise InvalidRequest(
            f"distillation.keep_layers {keep} must be distinct layer indices "
            f"in 0..{len(layers) - 1}"
        )
    types = getattr(model.config, "layer_types", None)
    if types and [types[i] for i in keep] != llama_cpp_layer_types(len(keep)):
        raise InvalidRequest(
            f"distillation.keep_layers {keep} give attention types {[types[i] for i in keep]}, "
            f"but llama.cpp runs a {len(keep)}-layer Gemma 3 as "
            f"{llama_cpp_layer_types(len(keep))}; pick layers that match, or leave it unset"
        )
    student = copy.deepcopy(model)
    student.model.layers = torch.nn.ModuleList([student.model.layers[i] for i in keep])
    config = student.config
    if getattr(config, "layer_types", None):
        config.layer_types = [config.layer_types[i] for i in keep]
    config.num_hidden_layers = len(keep)
    for index, layer in enumerate(student.model.layers):
        layer.self_attn.layer_idx = index
    return student


def train_student(
    student: Any,
    answers: list[TeacherAnswer],
    settings: DistillationSection,
    alpha: float,
    seed: int,
    pad: int,
    metrics: MetricsLog,
    label: str,
) -> Any:
    seed_everything(seed)
    student.train()
    for name, param in student.named_parameters():
        param.requires_grad_("embed_tokens" not in name)  # the tied 262k-row table stays
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate)
    order = DataOrder(len(answers), seed)
    for step in tqdm(range(1, settings.max_steps + 1), desc=f"student ({label})"):
        chosen = [
            answers[i] for i in order.take((step - 1) * settings.batch_size, settings.batch_size)
        ]
        batch = collate([a.example for a in chosen], pad)
        logits, targets = answer_logits(student, batch)
        values, indices = _teacher_tensors(chosen, targets, settings.top_k)
        total = distillation_loss_sum(logits, targets, values, indices, settings.temperature, alpha)
        loss = total / batch.answer_tokens
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        metrics.write(step=step, student=label, loss=float(loss.detach()))
    return student


def _teacher_tensors(
    chosen: list[TeacherAnswer], targets: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher top-k aligned with the student's answer positions (answers are right-aligned)."""
    rows, width = targets.shape
    values = torch.zeros(rows, width, k)
    indices = torch.zeros(rows, width, k, dtype=torch.long)
    for row, answer in enumerate(chosen):
        n = answer.values.shape[0]
        values[row, width - n :] = answer.values.float()
        indices[row, width - n :] = answer.indices.long()
    assert bool((targets[:, :] != IGNORE).sum() == sum(a.values.shape[0] for a in chosen))
    return values, indices


def distill(config: TrainingConfig) -> dict[str, Any]:
    settings = config.distillation
    out = config.run.output_dir
    merged = out / "merged"
    if not (merged / "config.json").is_file():
        raise InvalidRequest(f"no merged model at {merged}: run `raildebug train export` first")
    seed_everything(config.run.seed)
    random.seed(config.run.seed)
    tokenizer = load_tokenizer(base_dir(config))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    data = load_run_data(config)
    room = config.data.max_seq_len - settings.max_new_tokens
    questions = tokenize_all(config, tokenizer, data.train[: settings.questions])
    prompts = [keep_tail(q.input_ids[: q.answer_start], room) for q in questions]
    heldout = tokenize_all(config, tokenizer, data.heldout)

    teacher = load_model(merged, "float32")
    folder = out / "distill"
    stored = folder / "teacher-answers.pt"
    key = answers_key(merged, prompts, settings)
    answers = load_answers(stored, key)
    reused = answers is not None
    if answers is None:
        answers = generate_answers(teacher, prompts, settings, tokenizer.eos_token_id, pad)
        if not answers:
            raise InvalidRequest("the teacher produced no answers; check the merged model")
        save_answers(stored, key, answers)
    n_layers = len(teacher.model.layers)
    influence = block_influence(teacher, [a.example for a in answers])
    keep = settings.keep_layers or most_influential_layers(
        getattr(teacher.config, "layer_types", None),
        influence,
        settings.student_layers or (n_layers + 1) // 2,
    )
    pruned = prune_layers(teacher, keep)
    metrics = MetricsLog(folder / "metrics.jsonl")
    eval_bs = config.eval.batch_size
    results: dict[str, Any] = {
        "teacher_layers": n_layers,
        "student_layers": keep,
        "block_influence": [round(value, 4) for value in influence],
        "teacher_answers": len(answers),
        "teacher_answers_reused": reused,
        "alpha": settings.alpha,
        "temperature": settings.temperature,
        "top_k": settings.top_k,
        "eval_loss_teacher": evaluate(teacher, heldout, eval_bs, pad, _SINGLE),
        "eval_loss_student_untrained": evaluate(pruned, heldout, eval_bs, pad, _SINGLE),
    }
    del teacher
    students = {"kd": settings.alpha}
    if settings.ablation:
        students["ce_only"] = 0.0
    for label, alpha in students.items():
        student = train_student(
            copy.deepcopy(pruned), answers, settings, alpha, config.run.seed, pad, metrics, label
        )
        results[f"eval_loss_student_{label}"] = evaluate(student, heldout, eval_bs, pad, _SINGLE)
        if label == "kd":
            student.save_pretrained(folder / "student")
    write_json(folder / "summary.json", results)
    _plot(folder)
    return results


def export_student(config: TrainingConfig) -> dict[str, Any]:
    """The KD student through the same GGUF export and parity gate as the fine-tuned model."""
    from training.export.parity import enforce
    from training.export.pipeline import export_hf, gate

    folder = config.run.output_dir / "distill"
    files = export_hf(config, folder / "student", folder / "export", "student")
    report = gate(config, folder / "student", files)
    result = {"files": {k: str(v) for k, v in files.items()}, "parity": report.as_dict()}
    write_json(folder / "parity.json", result)
    enforce(report)
    return result


def _plot(folder: Path) -> None:
    import json

    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    for label in {r["student"] for r in rows}:
        single = folder / f"metrics-{label}.jsonl"
        single.write_text(
            "".join(json.dumps(r) + "\n" for r in rows if r["student"] == label), encoding="utf-8"
        )
        plot_losses(single, folder / f"loss-{label}.png", f"student ({label})")
