"""Train and dev examples for the rail-fix program, drawn from the training pipeline's SFT data.

Train comes from the SFT train file and dev from its held-out file; any dev example whose
(question, error log, code) also occurs in train is dropped so the splits stay disjoint. The data
version recorded with a compiled program is a hash of both files plus the sampling choices.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dspy

from raildebug.errors import InvalidRequest
from services.orchestrator.analyzers.dspy.program import format_context, query_text
from training.dataset.examples import SFTExample, read_examples
from training.dspy.metric import gold_identifiers

ContextFor = Callable[[str], str]


@dataclass(frozen=True)
class Splits:
    train: list[dspy.Example]
    dev: list[dspy.Example]
    version: str


def to_dspy(example: SFTExample, context_for: ContextFor | None) -> dspy.Example:
    """`context_for` retrieves live; without it the passages recorded in the SFT example serve."""
    query = query_text(example.question, example.error_log, example.code_snippet)
    context = context_for(query) if context_for else format_context(example.context_passages())
    gold = example.answer.strip()
    return dspy.Example(
        id=example.id,
        query=query,
        context=context,
        fix=gold,
        identifiers=gold_identifiers(gold),
    ).with_inputs("query", "context")


def load_splits(
    train_file: Path,
    dev_file: Path,
    *,
    train_size: int,
    dev_size: int,
    seed: int = 0,
    context_for: ContextFor | None = None,
) -> Splits:
    train_rows = read_examples(train_file)
    train_keys = {_key(row) for row in train_rows}
    dev_rows = [row for row in read_examples(dev_file) if _key(row) not in train_keys]
    if train_size > len(train_rows) or dev_size > len(dev_rows):
        raise InvalidRequest(
            f"asked for {train_size} train / {dev_size} dev examples, but {train_file} has "
            f"{len(train_rows)} and {dev_file} has {len(dev_rows)} disjoint from train"
        )
    rng = random.Random(seed)
    train = rng.sample(train_rows, train_size)
    dev = rng.sample(dev_rows, dev_size)
    digest = hashlib.sha256()
    for path in (train_file, dev_file):
        digest.update(path.read_bytes())
    version = f"sft-{digest.hexdigest()[:12]}:train{train_size}:dev{dev_size}:seed{seed}"
    return Splits(
        train=[to_dspy(row, context_for) for row in train],
        dev=[to_dspy(row, context_for) for row in dev],
        version=version,
    )


def _key(row: SFTExample) -> tuple[str, str, str]:
    return (row.question.strip(), row.error_log.strip(), row.code_snippet.strip())
