"""`raildebug eval retrieval`: score retrieval configurations on a judged query set
(`raildebug eval answers` lives in eval_answers.py)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from apps.cli import eval_answers
from raildebug.errors import RailDebugError
from raildebug.observability.logging import configure_logging
from services.retriever.evaluation import (
    DEFAULT_ALPHAS,
    METRIC_NAMES,
    default_configs,
    evaluate,
    judged_queries,
    load_corpus,
    load_qrels,
    load_queries,
)


def register(commands: Any) -> None:
    parser = commands.add_parser("eval", help="measure retrieval quality")
    targets = parser.add_subparsers(dest="target", required=True, metavar="TARGET")
    retrieval = targets.add_parser(
        "retrieval",
        help="ingest a corpus into a scratch store and score BM25, vector and hybrid rankings",
    )
    retrieval.add_argument(
        "--corpus",
        type=Path,
        required=True,
        help="passages JSONL (id, title, text, source, kind) or a folder of docs and code",
    )
    retrieval.add_argument("--queries", type=Path, required=True, help="JSONL with qid, text")
    retrieval.add_argument("--qrels", type=Path, required=True, help="TREC qrels (graded)")
    retrieval.add_argument(
        "--alphas",
        default=",".join(f"{a:g}" for a in DEFAULT_ALPHAS),
        help="comma-separated alphas for the hybrid@<alpha> configurations",
    )
    retrieval.add_argument(
        "--include", action="append", default=[], metavar="GLOB", help="folder corpus only"
    )
    retrieval.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB", help="folder corpus only"
    )
    retrieval.add_argument(
        "--store", type=Path, default=None, help="store directory to reuse (default: scratch)"
    )
    retrieval.add_argument("--json", action="store_true", help="print one JSON object")
    retrieval.set_defaults(run=run)
    eval_answers.register(targets)


def _alphas(text: str) -> list[float]:
    try:
        alphas = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"--alphas expects numbers like 0.25,0.5, got {text!r}") from None
    if any(not 0.0 <= a <= 1.0 for a in alphas):
        raise SystemExit(f"--alphas must lie within [0, 1], got {text!r}")
    return alphas


def run(args: argparse.Namespace) -> int:
    # stdout carries only the table or the JSON; progress and warnings go to stderr
    configure_logging("eval", level="WARNING", json=False)
    configs = default_configs(_alphas(args.alphas))
    try:
        documents = load_corpus(args.corpus, args.include, args.exclude)
        queries = load_queries(args.queries)
        qrels = load_qrels(args.qrels)
        judged = len(judged_queries(queries, qrels))
    except RailDebugError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from services.retriever.index import RetrievalIndex

    with tempfile.TemporaryDirectory(prefix="raildebug-eval-") as scratch:
        index = RetrievalIndex(args.store or Path(scratch) / "store")
        with tqdm(total=len(documents), unit="doc", desc="ingesting", file=sys.stderr) as bar:
            report = index.ingest(documents, progress=_advance(bar))
        for failure in report.errors:
            print(f"  not ingested: {failure.source}: {failure.message}", file=sys.stderr)
        with tqdm(total=len(configs), unit="config", desc="ranking", file=sys.stderr) as bar:
            results = evaluate(index, queries, qrels, configs, progress=_advance(bar))
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=False))
    else:
        print(_table(results, judged=judged))
    return 0


def _advance(bar: tqdm[Any]) -> Callable[[int], None]:
    """A progress callback (items done so far) that moves a tqdm bar."""

    def update(done: int) -> None:
        bar.update(done - bar.n)

    return update


def _table(results: dict[str, dict[str, float]], judged: int) -> str:
    width = max(len(name) for name in results)
    header = f"{'configuration':<{width}}  " + "  ".join(f"{m:>7}" for m in METRIC_NAMES)
    lines = [f"{judged} judged queries", header, "-" * len(header)]
    for name, metrics in results.items():
        values = "  ".join(f"{metrics[m]:7.4f}" for m in METRIC_NAMES)
        lines.append(f"{name:<{width}}  {values}")
    return "\n".join(lines)
