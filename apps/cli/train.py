"""`raildebug train …`: the training pipeline, one stage per subcommand, one YAML per run.

raildebug train data      --config C    resolve the dataset (shipped set + feedback import)
raildebug train finetune  --config C    LoRA/QLoRA (also under torchrun: FSDP2) [--resume]
raildebug train export    --config C    merge, GGUF, quantize, adapter GGUF, parity gate
raildebug train distill   --config C    teacher answers + top-k logits, KD student, its gate
raildebug train all       --config C    the four stages in order
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from apps.cli import train_k8s
from raildebug.errors import RailDebugError


def register(commands: Any) -> None:
    parser = commands.add_parser("train", help="fine-tune, export and distill the model")
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, help_text, run in (
        ("data", "write the run's train/held-out JSONL (with feedback imports)", _data),
        ("finetune", "LoRA/QLoRA fine-tuning with held-out evaluation", _finetune),
        ("export", "merge, write GGUFs, quantize, run the parity gate", _export),
        ("distill", "distill the fine-tuned model into a layer-pruned student", _distill),
        ("all", "data, finetune, export and distill in order", _all),
    ):
        stage = stages.add_parser(name, help=help_text)
        stage.add_argument("--config", type=Path, required=True, help="run YAML")
        stage.add_argument("--output-dir", type=Path, help="override run.output_dir")
        if name in ("finetune", "all"):
            stage.add_argument(
                "--resume", action="store_true", help="continue from the latest step checkpoint"
            )
            stage.add_argument(
                "--stop-after",
                type=int,
                metavar="STEP",
                help="checkpoint and stop after this step (resume later with --resume)",
            )
        stage.set_defaults(run=_guarded(run))
    train_k8s.add_kubernetes_commands(stages)


def _guarded(stage: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            result = stage(args)
        except RailDebugError as error:  # bad config, missing input, failed gate
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(json.dumps(result, indent=2, default=str))
        return 0

    return run


def _config(args: argparse.Namespace) -> Any:
    from training.config import load_training_config

    config = load_training_config(args.config)
    if args.output_dir is not None:
        config.run.output_dir = args.output_dir
    return config


def _data(args: argparse.Namespace) -> dict[str, Any]:
    from training.dataset.prepare import load_run_data, write_run_data

    config = _config(args)
    data = load_run_data(config)
    counts: dict[str, Any] = write_run_data(config, data)
    if data.feedback is not None:
        counts["feedback_kept"] = data.feedback.kept
        counts["feedback_skipped"] = data.feedback.skipped
    return counts


def _finetune(args: argparse.Namespace) -> dict[str, Any]:
    from training.sft import finetune

    return finetune(_config(args), resume=args.resume, stop_after=args.stop_after)


def _export(args: argparse.Namespace) -> dict[str, Any]:
    from training.export.pipeline import export_run

    return export_run(_config(args))


def _distill(args: argparse.Namespace) -> dict[str, Any]:
    from training.distill import distill, export_student

    config = _config(args)
    return {"distill": distill(config), "export": export_student(config)}


def _all(args: argparse.Namespace) -> dict[str, Any]:
    result = {"data": _data(args), "finetune": _finetune(args)}
    if "stopped_at_step" in result["finetune"]:
        return result
    return {**result, "export": _export(args), **_distill(args)}
