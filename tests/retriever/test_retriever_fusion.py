"""Fusion arithmetic against hand-computed values (Weaviate conventions)."""

from __future__ import annotations

import math

import pytest

from services.retriever.fusion import min_max_normalise, ranked_fusion, relative_score_fusion

KEYWORD = [("a", 10.0), ("b", 6.0), ("c", 2.0)]
VECTOR = [("b", 0.9), ("d", 0.7), ("a", 0.5)]


def test_relative_score_fusion_hand_computed() -> None:
    # keyword norm: a=(10-2)/8=1, b=(6-2)/8=0.5, c=0
    # vector norm:  b=(0.9-0.5)/0.4=1, d=(0.7-0.5)/0.4=0.5, a=0
    # fused (alpha=0.75): a=0.25*1=0.25  b=0.25*0.5+0.75*1=0.875  c=0  d=0.75*0.5=0.375
    fused = relative_score_fusion(KEYWORD, VECTOR, alpha=0.75)
    assert [doc_id for doc_id, _ in fused] == ["b", "d", "a", "c"]
    assert [score for _, score in fused] == pytest.approx([0.875, 0.375, 0.25, 0.0])


def test_relative_score_fusion_equal_scores_normalise_to_one() -> None:
    # Weaviate: when min == max every hit of that leg gets the full leg weight.
    fused = relative_score_fusion([("y", 3.0), ("x", 3.0)], [("z", 0.42)], alpha=0.4)
    # x, y: 0.6 * 1 (keyword) ; z: 0.4 * 1 (single vector hit)
    assert fused == [("x", pytest.approx(0.6)), ("y", pytest.approx(0.6)), ("z", 0.4)]


def test_relative_score_fusion_extremes_and_empty_legs() -> None:
    assert relative_score_fusion([], [], alpha=0.5) == []
    keyword_only = relative_score_fusion(KEYWORD, [], alpha=0.0)
    assert keyword_only == [("a", 1.0), ("b", 0.5), ("c", 0.0)]
    vector_only = relative_score_fusion(KEYWORD, VECTOR, alpha=1.0)
    assert vector_only[:2] == [("b", 1.0), ("d", pytest.approx(0.5))]
    # ids found only by the zero-weight leg score 0 and sort by id
    assert vector_only[2:] == [("a", 0.0), ("c", 0.0)]


def test_ranked_fusion_hand_computed() -> None:
    # rank from 0, k=60, keyword weight 0.25, vector weight 0.75
    # a = 0.25/60 + 0.75/62 = 0.0041666667 + 0.0120967742 = 0.0162634409
    # b = 0.25/61 + 0.75/60 = 0.0040983607 + 0.0125       = 0.0165983607
    # c = 0.25/62           = 0.0040322581
    # d = 0.75/61           = 0.0122950820
    fused = ranked_fusion(KEYWORD, VECTOR, alpha=0.75)
    assert [doc_id for doc_id, _ in fused] == ["b", "a", "d", "c"]
    assert [score for _, score in fused] == pytest.approx(
        [0.0165983607, 0.0162634409, 0.0122950820, 0.0040322581], abs=1e-10
    )


def test_ranked_fusion_other_k_and_ties() -> None:
    # k=1: x is first in keyword (1/1 * 0.5) and second in vector (1/2 * 0.5)
    # x = 0.5 + 0.25 = 0.75 ; y = 0.5/1 = 0.5 (vector rank 0) ; z = 0.5/2 = 0.25
    fused = ranked_fusion([("x", 9.0), ("z", 1.0)], [("y", 0.9), ("x", 0.1)], alpha=0.5, k=1)
    assert fused == [("x", 0.75), ("y", 0.5), ("z", 0.25)]
    # equal fused scores come back ordered by id
    tie = ranked_fusion([("q", 1.0)], [("p", 1.0)], alpha=0.5)
    assert [doc_id for doc_id, _ in tie] == ["p", "q"]
    assert [score for _, score in tie] == pytest.approx([0.0083333333, 0.0083333333])


def test_duplicates_in_a_leg_count_once() -> None:
    assert min_max_normalise([("a", 4.0), ("b", 2.0), ("a", 1.0)]) == [("a", 1.0), ("b", 0.0)]
    # a keeps rank 0 (1/10), b is rank 1 (1/11), not rank 2
    fused = ranked_fusion([("a", 1.0), ("a", 0.5), ("b", 0.2)], [], alpha=0.0, k=10)
    assert [doc_id for doc_id, _ in fused] == ["a", "b"]
    assert [score for _, score in fused] == pytest.approx([0.1, 0.0909090909])


@pytest.mark.parametrize("alpha", [-0.1, 1.5, math.nan])
def test_alpha_out_of_range(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        relative_score_fusion(KEYWORD, VECTOR, alpha)
    with pytest.raises(ValueError, match="alpha"):
        ranked_fusion(KEYWORD, VECTOR, alpha)
