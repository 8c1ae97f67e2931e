"""Distillation end to end on a tiny model: teacher top-k targets, a layer-pruned student
trained with KD and with CE only, and the student exported through the parity gate."""

from __future__ import annotations

import json

import pytest

from raildebug.errors import InvalidRequest
from tests.support.training import TinyConfig
from training.distill import distill, export_student, prune_layers
from training.export.merge import merge_adapter
from training.modeling import load_model
from training.sft import finetune


def test_distilled_student_is_smaller_reported_and_exported(tiny_config: TinyConfig) -> None:
    config = tiny_config(
        optimization={"max_steps": 3},
        distillation={
            "questions": 4,
            "max_new_tokens": 12,
            "max_steps": 4,
            "batch_size": 2,
            "top_k": 8,
            "student_layers": 1,
        },
    )
    finetune(config)
    out = config.run.output_dir
    merge_adapter(out / "base", out / "adapter", out / "merged")
    report = distill(config)
    assert report["teacher_layers"] == 2 and len(report["block_influence"]) == 2
    influence = report["block_influence"]
    assert report["student_layers"] == [influence.index(max(influence))]
    for key in ("eval_loss_teacher", "eval_loss_student_kd", "eval_loss_student_ce_only"):
        assert report[key] > 0
    assert report["eval_loss_student_kd"] != report["eval_loss_student_ce_only"]
    student = load_model(out / "distill" / "student")
    assert len(student.model.layers) == 1
    exported = export_student(config)
    assert exported["parity"]["passed"] and exported["parity"]["top1_agreement"] == 1.0
    saved = json.loads((out / "distill" / "summary.json").read_text())
    assert saved["alpha"] == config.distillation.alpha
    assert (out / "distill" / "loss-kd.png").is_file()


def test_bad_keep_layers_are_a_clear_error(tiny_config: TinyConfig) -> None:
    model = load_model(tiny_config().run.output_dir / "base")
    with pytest.raises(InvalidRequest, match="keep_layers"):
        prune_layers(model, [0, 7])


def test_teacher_answers_are_reused_until_what_made_them_changes(
    tiny_config: TinyConfig,
) -> None:
    distillation = {
        "questions": 4,
        "max_new_tokens": 8,
        "max_steps": 2,
        "batch_size": 2,
        "top_k": 8,
        "ablation": False,
    }
    config = tiny_config(optimization={"max_steps": 2}, distillation=distillation)
    finetune(config)
    out = config.run.output_dir
    merge_adapter(out / "base", out / "adapter", out / "merged")
    first = distill(config)
    again = distill(config)
    assert not first["teacher_answers_reused"] and again["teacher_answers_reused"]
    assert again["eval_loss_student_kd"] == first["eval_loss_student_kd"]
    other_k = config.model_copy(
        update={"distillation": config.distillation.model_copy(update={"top_k": 4})}
    )
    assert not distill(other_k)["teacher_answers_reused"]
    merge_adapter(out / "base", out / "adapter", out / "merged")  # a new teacher, same weights
    assert not distill(config)["teacher_answers_reused"]
