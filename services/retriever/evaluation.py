"""Retrieval quality on a judged query set: the same index and search path the service runs.

A corpus is either a passages JSONL (id, title, text, source, kind; each passage is ingested as
one document whose source is its id) or a folder ingested like `raildebug ingest` does (each
file's path is its id). Searches return chunks; a ranking is collapsed to documents by first
occurrence, then scored against TREC qrels with ir-measures. Every configuration runs on the
same scratch store, so the only difference between them is the ranking. See document_ranking
for how the top 10 (what the service hands the orchestrator) and the deeper list are formed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raildebug.errors import InvalidRequest
from services.retriever.index import RetrievalIndex
from services.retriever.models import (
    DEFAULT_ALPHA,
    MAX_K,
    SERVING_PROFILE,
    WEAVIATE_NATIVE_PROFILE,
    WEAVIATE_PROFILE,
    FusionMethod,
    RankingProfile,
    SearchQuery,
    SourceDocument,
)
from services.retriever.sources import (
    EXTENSIONS,
    KIND_CODE,
    KIND_TEXT,
    iter_source_files,
    read_source_document,
)

METRIC_NAMES = ("nDCG@10", "R@10", "R@50", "RR")
DEFAULT_ALPHAS = (0.25, 0.5, 0.75)
WEAVIATE_DEFAULT_ALPHA = 0.75
HEAD_DEPTH = 10
RUN_DEPTH = MAX_K


@dataclass(frozen=True)
class EvalConfig:
    """One way of ranking: which legs, how fused, which safeguards."""

    name: str
    alpha: float
    fusion: FusionMethod = FusionMethod.RELATIVE_SCORE
    profile: RankingProfile = SERVING_PROFILE


@dataclass(frozen=True)
class EvalQuery:
    qid: str
    text: str


def default_configs(
    alphas: Iterable[float] = DEFAULT_ALPHAS, *, native_hybrid: bool = False
) -> list[EvalConfig]:
    """bm25, vector, hybrid (serving), hybrid@<alpha>..., hybrid_ranked, weaviate_default.

    With `native_hybrid` (an index on the weaviate store) also weaviate-native-hybrid:
    weaviate_default's ranking computed by Weaviate's own hybrid query instead of emulated.
    """
    configs = [
        EvalConfig("bm25", 0.0),
        EvalConfig("vector", 1.0),
        EvalConfig("hybrid", DEFAULT_ALPHA),
    ]
    configs += [EvalConfig(f"hybrid@{alpha:g}", alpha) for alpha in alphas]
    configs.append(EvalConfig("hybrid_ranked", DEFAULT_ALPHA, FusionMethod.RANKED))
    configs.append(EvalConfig("weaviate_default", WEAVIATE_DEFAULT_ALPHA, profile=WEAVIATE_PROFILE))
    if native_hybrid:
        configs.append(
            EvalConfig(
                "weaviate-native-hybrid", WEAVIATE_DEFAULT_ALPHA, profile=WEAVIATE_NATIVE_PROFILE
            )
        )
    return configs


def _read_jsonl(path: Path, what: str, required: Sequence[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidRequest(f"cannot read {what} file {path}: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        missing = [key for key in required if not isinstance(row.get(key), str) or not row[key]]
        if missing:
            raise InvalidRequest(f"{path}:{number}: {what} needs string field(s) {missing}")
        rows.append(row)
    if not rows:
        raise InvalidRequest(f"{what} file {path} holds no entries")
    return rows


def passage_document(row: dict[str, Any]) -> SourceDocument:
    """A corpus passage as a document: its id is the source; every chunk carries its title."""
    original = str(row.get("source", ""))
    suffix = Path(original).suffix.lower()
    kind, language = EXTENSIONS.get(suffix, (KIND_TEXT, "text"))
    if row.get("kind") != "code" or kind != KIND_CODE:
        kind, language = KIND_TEXT, "text"
    return SourceDocument(
        source=str(row["id"]),
        content=str(row["text"]),
        kind=kind,
        language=language,
        title=str(row.get("title", "")).strip(),
    )


def load_corpus(
    path: Path, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[SourceDocument]:
    """Documents of a passages JSONL file or of a folder (see the module docstring)."""
    if path.is_dir():
        return [
            read_source_document(path, file)
            for _, file in iter_source_files(path, include, exclude)
        ]
    return [passage_document(row) for row in _read_jsonl(path, "corpus", ("id", "text"))]


def load_queries(path: Path) -> list[EvalQuery]:
    return [
        EvalQuery(row["qid"], row["text"]) for row in _read_jsonl(path, "query", ("qid", "text"))
    ]


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """TREC qrels ("qid iteration doc_id grade" per line) as {qid: {doc id: grade}}."""
    qrels: dict[str, dict[str, int]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidRequest(f"cannot read qrels file {path}: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 4 or not fields[3].lstrip("-").isdigit():
            raise InvalidRequest(
                f"{path}:{number}: expected 'qid iteration doc_id grade' (grade an integer), "
                f"got {line!r}"
            )
        qrels.setdefault(fields[0], {})[fields[2]] = int(fields[3])
    if not qrels:
        raise InvalidRequest(f"qrels file {path} holds no judgements")
    return qrels


def document_ranking(index: RetrievalIndex, query: EvalQuery, config: EvalConfig) -> list[str]:
    """Document ids, best first: what a caller asking for the top 10 gets, then the rest.

    The head is a k=10 search, so leg depth, normalisation and the exact-identifier pins work
    exactly as when the orchestrator asks for a handful of passages; a k=100 search fills
    positions 11-100 for Recall@50. Chunks collapse to their document by first occurrence.
    """
    ranking: dict[str, None] = {}
    for k in (HEAD_DEPTH, RUN_DEPTH):
        result = index.search(
            SearchQuery(
                query.text,
                k=k,
                alpha=config.alpha,
                fusion=config.fusion,
                max_per_source=1,  # documents are the unit judged: one chunk each is enough
            ),
            profile=config.profile,
        )
        for passage in result.passages:
            ranking.setdefault(passage.chunk.source, None)
    return list(ranking)


def score(qrels: dict[str, dict[str, int]], rankings: dict[str, list[str]]) -> dict[str, float]:
    """Mean nDCG@10, Recall@10, Recall@50 and MRR over the judged queries (ir-measures).

    A judged query with no results scores 0 on every metric rather than being skipped.
    """
    import ir_measures
    from ir_measures import RR, R, nDCG

    run = {
        qid: {doc: float(len(docs) - rank) for rank, doc in enumerate(docs)}
        for qid, docs in rankings.items()
        if docs
    }
    measures = [nDCG @ 10, R @ 10, R @ 50, RR]
    per_query: dict[str, dict[str, float]] = {str(m): {} for m in measures}
    for metric in ir_measures.iter_calc(measures, qrels, run):
        per_query[str(metric.measure)][metric.query_id] = float(metric.value)
    judged = [qid for qid in qrels if any(grade > 0 for grade in qrels[qid].values())]
    return {
        name: sum(per_query[str(m)].get(qid, 0.0) for qid in judged) / max(len(judged), 1)
        for name, m in zip(METRIC_NAMES, measures, strict=True)
    }


def judged_queries(
    queries: Sequence[EvalQuery], qrels: dict[str, dict[str, int]]
) -> list[EvalQuery]:
    """The queries that have judgements; raises InvalidRequest when there are none."""
    judged = [q for q in queries if q.qid in qrels]
    if not judged:
        raise InvalidRequest("no query has a judgement in the qrels; check that the qids match")
    return judged


def evaluate(
    index: RetrievalIndex,
    queries: Sequence[EvalQuery],
    qrels: dict[str, dict[str, int]],
    configs: Sequence[EvalConfig],
    progress: Callable[[int], None] | None = None,
) -> dict[str, dict[str, float]]:
    """{config name: {metric: value}} for every configuration, on judged queries only."""
    judged = judged_queries(queries, qrels)
    results: dict[str, dict[str, float]] = {}
    for done, config in enumerate(configs, 1):
        rankings = {q.qid: document_ranking(index, q, config) for q in judged}
        results[config.name] = score(qrels, rankings)
        if progress is not None:
            progress(done)
    return results
