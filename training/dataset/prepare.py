"""The examples one run trains and evaluates on: shipped set, feedback imports, limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.orchestrator.prompting import load_template
from training.config import TrainingConfig
from training.dataset.examples import SFTExample, read_examples, write_examples
from training.dataset.feedback_import import ImportReport, import_feedback
from training.dataset.formatting import TokenizedExample, tokenize_example


@dataclass(frozen=True)
class RunData:
    train: list[SFTExample]
    heldout: list[SFTExample]
    feedback: ImportReport | None


def load_run_data(config: TrainingConfig) -> RunData:
    data = config.data
    train = read_examples(data.train_path)
    heldout = read_examples(data.heldout_path)
    report = None
    if data.feedback_path is not None:
        imported, report = import_feedback(
            data.feedback_path, data.feedback_min_score, data.prompt_template
        )
        held_ids = {e.id for e in heldout}
        train += [e for e in imported if e.id not in held_ids]
    return RunData(
        train=train[: data.max_train_examples],
        heldout=heldout[: data.max_heldout_examples],
        feedback=report,
    )


def write_run_data(config: TrainingConfig, data: RunData) -> dict[str, int]:
    folder = config.run.output_dir / "data"
    return {
        "train": write_examples(folder / "train.jsonl", data.train),
        "heldout": write_examples(folder / "heldout.jsonl", data.heldout),
    }


def tokenize_all(
    config: TrainingConfig, tokenizer: Any, examples: list[SFTExample]
) -> list[TokenizedExample]:
    template = load_template(config.data.prompt_template)
    return [tokenize_example(tokenizer, template, e, config.data.max_seq_len) for e in examples]
