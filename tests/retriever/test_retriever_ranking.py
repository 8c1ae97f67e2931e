"""After fusion: exact-identifier pins, near-duplicate removal, per-source cap, reranking."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from services.retriever.models import Chunk, ScoredPassage
from services.retriever.ranking import exact_match_pins, select_passages, shingles
from services.retriever.rerank import rerank


def chunk(chunk_id: str, text: str, source: str = "") -> Chunk:
    return Chunk(chunk_id, source or f"docs/{chunk_id}.md", text, 1, 1, "doc", "markdown", "")


def passage(chunk_id: str, fused: float, text: str = "", source: str = "") -> ScoredPassage:
    body = text or f"unique text number {chunk_id} with its own words {chunk_id * 3}"
    return ScoredPassage(chunk(chunk_id, body, source), 0.0, 0.0, fused)


def ids(passages: Sequence[ScoredPassage]) -> list[str]:
    return [p.chunk.id for p in passages]


def test_pins_take_the_best_keyword_hit_per_identifier() -> None:
    hits = [
        chunk("a", "lock timeout in general"),
        chunk("b", "E73-B is raised here, pm_lock_timeout_ms too"),
        chunk("c", "E73-B again"),
        chunk("d", "only W05-D"),
    ]
    pins = exact_match_pins(["e73-b", "pm_lock_timeout_ms", "w05-d", "zz-99"], hits, limit=5)
    assert pins == {"b": ("e73-b", "pm_lock_timeout_ms"), "d": ("w05-d",)}
    assert exact_match_pins(["e73-b", "w05-d"], hits, limit=1) == {"b": ("e73-b",)}
    assert exact_match_pins([], hits, limit=3) == {}


def test_a_pin_below_k_replaces_the_last_unpinned_passage() -> None:
    ranked = [passage(c, 1.0 - i / 10) for i, c in enumerate("abcdef")]
    top = select_passages(ranked, 3, pinned={"f"}, drop_near_duplicates=False)
    assert ids(top) == ["a", "b", "f"]  # fused order kept, f displaced c
    assert [p.pinned for p in top] == [False, False, True]
    assert top[2].fused_score == pytest.approx(0.5)  # its own score, not a boosted one


def test_a_pin_that_ranks_on_its_own_is_not_marked() -> None:
    ranked = [passage(c, 1.0 - i / 10) for i, c in enumerate("abcd")]
    top = select_passages(ranked, 3, pinned={"b"})
    assert ids(top) == ["a", "b", "c"]
    assert not any(p.pinned for p in top)


def test_pins_beyond_k_keep_the_best_ranked_ones() -> None:
    ranked = [passage(c, 1.0 - i / 10) for i, c in enumerate("abcdef")]
    top = select_passages(ranked, 2, pinned={"d", "e", "f"})
    assert ids(top) == ["d", "e"]


def test_near_duplicates_keep_the_better_ranked_copy() -> None:
    text = "Check the lock detection contacts and the adjustment of the lock slide on P12."
    ranked = [
        passage("a", 0.9, text, "docs/a.md"),
        passage("b", 0.8, "Completely different advice about track circuits and ballast."),
        passage("c", 0.7, text.replace("P12", "P12 "), "docs/copy-of-a.md"),
        passage("d", 0.6),
    ]
    assert ids(select_passages(ranked, 3)) == ["a", "b", "d"]
    assert ids(select_passages(ranked, 3, drop_near_duplicates=False)) == ["a", "b", "c"]


def test_shingles_of_short_texts() -> None:
    assert shingles("E73-B") == frozenset({("e73-b",)})
    assert len(shingles("one two three four")) == 2


def test_cap_per_source_lets_other_sources_in_but_not_over_a_pin() -> None:
    ranked = [
        passage("a1", 0.9, source="docs/a.md"),
        passage("a2", 0.8, source="docs/a.md"),
        passage("a3", 0.7, source="docs/a.md"),
        passage("b1", 0.6, source="docs/b.md"),
        passage("c1", 0.5, source="docs/c.md"),
    ]
    assert ids(select_passages(ranked, 3, max_per_source=1)) == ["a1", "b1", "c1"]
    assert ids(select_passages(ranked, 3, max_per_source=0)) == ["a1", "a2", "a3"]
    # a pinned passage counts towards its source's cap but is never removed by it
    top = select_passages(ranked, 3, max_per_source=1, pinned={"a3"})
    assert ids(top) == ["a3", "b1", "c1"]
    assert top[0].pinned


class ReverseAlphabet:
    """A reranker whose order is obvious: later letters of the passage's first word win."""

    name = "reverse-alphabet"

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        return [float(ord(text[0])) for text in passages]


def test_rerank_reorders_the_head_and_keeps_the_tail() -> None:
    ranked = [passage(c, 1.0 - i / 10, text=f"{c} text") for i, c in enumerate("abcde")]
    out = rerank(ReverseAlphabet(), "query", ranked, depth=3)
    assert ids(out) == ["c", "b", "a", "d", "e"]
    assert [p.rerank_score for p in out] == [ord("c"), ord("b"), ord("a"), None, None]
    assert out[0].fused_score == pytest.approx(0.8)  # the explanation keeps the fused score


def test_rerank_rejects_a_reranker_that_loses_passages() -> None:
    class Broken:
        name = "broken"

        def score(self, query: str, passages: Sequence[str]) -> list[float]:
            return [1.0]

    with pytest.raises(ValueError, match="returned 1 scores for 2 passages"):
        rerank(Broken(), "q", [passage("a", 1.0), passage("b", 0.5)])
