"""Combines the keyword (BM25) and vector (cosine) rankings into one, the way Weaviate does.

Pure functions over (id, score) lists, so the arithmetic is testable by hand. Conventions,
checked against Weaviate's source (usecases/traverser/hybrid/hybrid_fusion.go and searcher.go):

* The keyword leg is weighted `1 - alpha` and the vector leg `alpha`
  (alpha = 1: pure vector, alpha = 0: pure keyword).
* relativeScoreFusion min-max normalises each leg over the results that leg returned:
  norm = (score - min) / (max - min). When every score in a leg is equal (including a leg
  with a single result) Weaviate gives each of them the full leg weight, i.e. norm = 1.
  The vector leg's score is the cosine similarity (Weaviate uses 1 - distance, the same thing).
* rankedFusion scores weight / (k + rank) with rank counted from 0 (Weaviate's `i + 60`), so the
  top hit of a leg contributes weight / 60 with the default k = 60.
* An id missing from a leg gets nothing from that leg. If a leg lists an id twice, only the
  first (best) occurrence counts.
* Output is sorted by fused score, highest first; ties are broken by id (Weaviate breaks ties
  by the leg score) so that equal scores come back in the same order on every run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

ScoredIds = list[tuple[str, float]]

DEFAULT_RANK_CONSTANT = 60


def _check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:  # also rejects NaN
        raise ValueError(f"alpha must be within [0, 1], got {alpha}")


def _first_occurrences(results: Iterable[tuple[str, float]]) -> ScoredIds:
    seen: set[str] = set()
    unique: ScoredIds = []
    for doc_id, score in results:
        if doc_id not in seen:
            seen.add(doc_id)
            unique.append((doc_id, float(score)))
    return unique


def _sorted(fused: dict[str, float]) -> ScoredIds:
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def min_max_normalise(results: Sequence[tuple[str, float]]) -> ScoredIds:
    """Scale one leg's scores to [0, 1] over its own result set (all equal: all 1)."""
    unique = _first_occurrences(results)
    if not unique:
        return []
    scores = [score for _, score in unique]
    low, high = min(scores), max(scores)
    if high == low or not math.isfinite(high - low):
        return [(doc_id, 1.0) for doc_id, _ in unique]
    return [(doc_id, (score - low) / (high - low)) for doc_id, score in unique]


def relative_score_fusion(
    keyword: Sequence[tuple[str, float]],
    vector: Sequence[tuple[str, float]],
    alpha: float,
) -> ScoredIds:
    """Weaviate relativeScoreFusion: alpha * vector_norm + (1 - alpha) * keyword_norm."""
    _check_alpha(alpha)
    fused: dict[str, float] = {}
    for weight, leg in ((1.0 - alpha, keyword), (alpha, vector)):
        for doc_id, norm in min_max_normalise(leg):
            fused[doc_id] = fused.get(doc_id, 0.0) + weight * norm
    return _sorted(fused)


def ranked_fusion(
    keyword: Sequence[tuple[str, float]],
    vector: Sequence[tuple[str, float]],
    alpha: float,
    k: int = DEFAULT_RANK_CONSTANT,
) -> ScoredIds:
    """Weaviate rankedFusion: alpha / (k + vector_rank) + (1 - alpha) / (k + keyword_rank).

    Each leg must be ordered best first; its scores are otherwise ignored. Ranks start at 0.
    """
    _check_alpha(alpha)
    if k < 1:
        raise ValueError(f"rank constant k must be at least 1, got {k}")
    fused: dict[str, float] = {}
    for weight, leg in ((1.0 - alpha, keyword), (alpha, vector)):
        for rank, (doc_id, _) in enumerate(_first_occurrences(leg)):
            fused[doc_id] = fused.get(doc_id, 0.0) + weight / (k + rank)
    return _sorted(fused)
