"""`raildebug dspy compile`: optimize the rail-fix program against the served model, measure the
dev metric before and after with dspy.Evaluate, and save the result as the next version.

MIPROv2 is not offered: it asks the task model itself to propose instructions (a 270M base model
proposes noise) and needs tens of dev evaluations per trial, hours on two CPU cores.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from raildebug.errors import InvalidRequest
from services.orchestrator.analyzers.dspy.artifacts import ProgramStore, StoredProgram
from services.orchestrator.analyzers.dspy.lm import InferenceEngine, rail_lm
from services.orchestrator.analyzers.dspy.program import RailFixRAG, rail_settings
from services.orchestrator.clients.inference import InferenceClient
from services.orchestrator.clients.retriever import RetrieverClient
from training.dspy.dataset import Splits, load_splits
from training.dspy.metric import METRIC_VERSION, rail_fix_metric

REPO_ROOT = Path(__file__).resolve().parents[2]


class CompileConfig(BaseModel):
    """One compilation, as written in a YAML file (paths relative to the repository root)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("rail_fix", description="Program name; versions are numbered per name.")
    inference_address: str = "127.0.0.1:50053"
    retriever_address: str = Field(
        "", description="Retrieve context live; empty: use the passages stored with the data."
    )
    train_file: Path = Path("training/datasets/rail_sft/train.jsonl")
    dev_file: Path = Path("training/datasets/rail_sft/heldout.jsonl")
    train_size: int = Field(8, ge=1)
    dev_size: int = Field(6, ge=1)
    seed: int = 0
    max_tokens: int = Field(160, ge=16, le=1024)
    max_bootstrapped_demos: int = Field(2, ge=0)
    max_labeled_demos: int = Field(2, ge=0)
    max_rounds: int = Field(1, ge=1)
    num_threads: int = Field(1, ge=1)

    @classmethod
    def from_yaml(cls, path: Path) -> CompileConfig:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            config = cls.model_validate(raw)
        except (OSError, yaml.YAMLError, ValidationError) as error:
            raise InvalidRequest(f"{path}: not a valid compile config: {error}") from None
        return config.model_copy(
            update={
                "train_file": _resolve(config.train_file),
                "dev_file": _resolve(config.dev_file),
            }
        )


@dataclass(frozen=True)
class CompileReport:
    stored: StoredProgram
    rows: list[tuple[str, float, float]]  # dev example id, uncompiled, compiled

    def table(self) -> str:
        m = self.stored.manifest
        lines = [
            f"{'dev example':<24} {'uncompiled':>10} {'compiled':>10}",
            *(f"{ident:<24} {before:>10.3f} {after:>10.3f}" for ident, before, after in self.rows),
            f"{'mean (' + METRIC_VERSION + ')':<24} {m.scores['uncompiled']:>10.3f} "
            f"{m.scores['compiled']:>10.3f}",
            "",
            f"saved {m.ref} -> {self.stored.path}",
            f"model {m.model} · data {m.data_version} · demos {m.optimizer['demos']}",
            f"cost: {m.cost['lm_calls']:.0f} LM calls, {m.cost['prompt_tokens']:.0f} prompt + "
            f"{m.cost['completion_tokens']:.0f} completion tokens, {m.cost['minutes']:.1f} min",
        ]
        return "\n".join(lines)


def compile_program(config: CompileConfig, store: ProgramStore) -> CompileReport:
    started = time.monotonic()
    engine = InferenceEngine(InferenceClient(config.inference_address))
    retriever = RetrieverClient(config.retriever_address) if config.retriever_address else None
    try:
        model = engine.model_name()
        context_for = RailFixRAG(search=retriever).retrieve if retriever else None
        splits = load_splits(
            config.train_file,
            config.dev_file,
            train_size=config.train_size,
            dev_size=config.dev_size,
            seed=config.seed,
            context_for=context_for,
        )
        lm = rail_lm(engine, max_tokens=config.max_tokens, seed=config.seed)
        with rail_settings(lm):
            compiled, before, after = _optimize(config, splits)
    finally:
        engine.close()  # and its Inference client
        if retriever is not None:
            retriever.close()
    demos = len(compiled.generate.demos)
    stored = store.save(
        {
            "name": config.name,
            "program": type(compiled).__name__,
            "model": model,
            "data_version": splits.version
            + (":ctx=retriever" if config.retriever_address else ":ctx=dataset"),
            "metric_version": METRIC_VERSION,
            "optimizer": {
                "name": "BootstrapFewShot",
                "max_bootstrapped_demos": config.max_bootstrapped_demos,
                "max_labeled_demos": config.max_labeled_demos,
                "max_rounds": config.max_rounds,
                "max_tokens": config.max_tokens,
                "seed": config.seed,
                "demos": demos,
            },
            "scores": {"uncompiled": _mean(before), "compiled": _mean(after)},
            "cost": {
                "lm_calls": engine.counters.calls,
                "prompt_tokens": engine.counters.prompt_tokens,
                "completion_tokens": engine.counters.completion_tokens,
                "minutes": round((time.monotonic() - started) / 60, 2),
            },
        },
        compiled,
    )
    rows = [
        (str(example.id), float(b), float(a))
        for (example, _, b), (_, _, a) in zip(before.results, after.results, strict=True)
    ]
    return CompileReport(stored, rows)


def _optimize(config: CompileConfig, splits: Splits) -> tuple[RailFixRAG, Any, Any]:
    evaluate = dspy.Evaluate(
        devset=splits.dev,
        metric=rail_fix_metric,
        num_threads=config.num_threads,
        display_progress=True,
        provide_traceback=True,
    )
    before = evaluate(RailFixRAG())
    optimizer = dspy.BootstrapFewShot(
        metric=rail_fix_metric,
        max_bootstrapped_demos=config.max_bootstrapped_demos,
        max_labeled_demos=config.max_labeled_demos,
        max_rounds=config.max_rounds,
    )
    compiled = optimizer.compile(RailFixRAG(), trainset=splits.train)
    after = evaluate(compiled)
    return compiled, before, after


def _mean(result: Any) -> float:
    return round(float(result.score) / 100.0, 4)  # dspy.Evaluate reports a percentage


def _resolve(path: Path) -> Path:
    return path if path.is_absolute() else REPO_ROOT / path
