"""`raildebug eval retrieval`: score retrieval configurations on a judged query set
(`raildebug eval answers` lives in eval_answers.py)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tqdm import tqdm

from apps.cli import eval_answers
from raildebug.errors import RailDebugError
from raildebug.observability.logging import configure_logging
from raildebug.settings import RetrieverSettings
from services.retriever.evaluation import (
    DEFAULT_ALPHAS,
    METRIC_NAMES,
    EvalQuery,
    default_configs,
    evaluate,
    judged_queries,
    load_corpus,
    load_qrels,
    load_queries,
)
from services.retriever.models import SourceDocument
from services.retriever.ports import ChunkStore, EmbeddingModel


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
        "--store",
        default="lancedb",
        help="store backend(s) to rank on, comma-separated for a side-by-side table: lancedb "
        "(a scratch directory), weaviate (the server of RAILDEBUG_RETRIEVER_WEAVIATE_URL, in a "
        "scratch collection dropped afterwards; adds Weaviate's native hybrid)",
    )
    retrieval.add_argument(
        "--store-dir",
        type=Path,
        default=None,
        help="LanceDB directory to reuse instead of a scratch one",
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


STORE_BACKENDS = ("lancedb", "weaviate")


def _stores(text: str) -> list[str]:
    stores = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(stores) - set(STORE_BACKENDS))
    if not stores or unknown or len(set(stores)) != len(stores):
        raise SystemExit(
            f"--store expects one or more of {', '.join(STORE_BACKENDS)} (each once), got {text!r}"
        )
    return stores


def run(args: argparse.Namespace) -> int:
    # stdout carries only the table or the JSON; progress and warnings go to stderr
    configure_logging("eval", level="WARNING", json=False)
    alphas = _alphas(args.alphas)
    stores = _stores(args.store)
    try:
        documents = load_corpus(args.corpus, args.include, args.exclude)
        queries = load_queries(args.queries)
        qrels = load_qrels(args.qrels)
        judged = len(judged_queries(queries, qrels))
    except RailDebugError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from services.retriever.embedding import Embedder

    embedder = Embedder()
    results: dict[str, dict[str, float]] = {}
    for backend in stores:
        try:
            ranked = _evaluate_on(backend, args, embedder, documents, queries, qrels, alphas)
        except RailDebugError as error:
            print(f"error: {backend}: {error}", file=sys.stderr)
            return 1
        prefix = f"{backend}:" if len(stores) > 1 else ""
        results |= {prefix + name: metrics for name, metrics in ranked.items()}
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=False))
    else:
        print(_table(results, judged=judged))
    return 0


def _evaluate_on(
    backend: str,
    args: argparse.Namespace,
    embedder: EmbeddingModel,
    documents: Sequence[SourceDocument],
    queries: Sequence[EvalQuery],
    qrels: dict[str, dict[str, int]],
    alphas: Sequence[float],
) -> dict[str, dict[str, float]]:
    """Ingest into a scratch store of `backend` and score every configuration on it."""
    from services.retriever.index import RetrievalIndex

    with ExitStack() as cleanup:
        scratch = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="raildebug-eval-")))
        store: ChunkStore | None = None
        if backend == "weaviate":
            from services.retriever.backends import open_weaviate_store
            from services.retriever.weaviate_store import WeaviateChunkStore

            name = f"RailDebugEval{uuid.uuid4().hex[:12]}"
            settings = RetrieverSettings().model_copy(update={"weaviate_collection": name})
            weaviate = open_weaviate_store(settings, embedder)
            if not isinstance(weaviate, WeaviateChunkStore):
                raise TypeError(f"expected a WeaviateChunkStore, got {type(weaviate).__name__}")
            cleanup.callback(weaviate.drop)
            store = weaviate
        index = RetrievalIndex(args.store_dir or scratch / "store", embedder=embedder, store=store)
        desc = f"ingesting ({backend})"
        with tqdm(total=len(documents), unit="doc", desc=desc, file=sys.stderr) as bar:
            report = index.ingest(documents, progress=_advance(bar))
        for failure in report.errors:
            print(f"  not ingested: {failure.source}: {failure.message}", file=sys.stderr)
        configs = default_configs(alphas, native_hybrid=backend == "weaviate")
        desc = f"ranking ({backend})"
        with tqdm(total=len(configs), unit="config", desc=desc, file=sys.stderr) as bar:
            return evaluate(index, queries, qrels, configs, progress=_advance(bar))


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
