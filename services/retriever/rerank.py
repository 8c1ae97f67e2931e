"""The optional reranking stage between fusion and the final selection.

A cross-encoder reads query and passage together and usually orders the head of a hybrid
result list better than either leg. No cross-encoder can be installed from PyPI with its
weights inside the package (they are downloaded from a model hub at first use, which this
deployment forbids), so RailDebug ships none; a deployment that has one plugs it in here by
passing any object with this interface to RetrievalIndex(reranker=...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from services.retriever.models import ScoredPassage

DEFAULT_RERANK_DEPTH = 50


class Reranker(Protocol):
    """Scores (query, passage) pairs; higher is more relevant. Scores need not be bounded."""

    name: str

    def score(self, query: str, passages: Sequence[str]) -> Sequence[float]: ...


def rerank(
    reranker: Reranker,
    query: str,
    ranked: Sequence[ScoredPassage],
    depth: int = DEFAULT_RERANK_DEPTH,
) -> list[ScoredPassage]:
    """Reorder the first `depth` passages by the reranker's score; the rest keep fused order.

    Each reranked passage carries its rerank score next to the leg scores, so the
    explanation of its rank stays complete.
    """
    head, tail = list(ranked[:depth]), list(ranked[depth:])
    if not head:
        return []
    scores = [float(s) for s in reranker.score(query, [p.chunk.text for p in head])]
    if len(scores) != len(head):
        raise ValueError(
            f"reranker {reranker.name!r} returned {len(scores)} scores for {len(head)} passages"
        )
    order = sorted(range(len(head)), key=lambda i: (-scores[i], i))
    return [replace(head[i], rerank_score=scores[i]) for i in order] + tail
