"""From a fused candidate list to the k passages a caller sees.

Fusion alone can push the one chunk that contains the exact identifier an engineer typed below
k (Weaviate users report exactly that), can return the same paragraph twice when it was copied
between files, and can fill every slot from one long file. This module fixes those three
things after fusion, as pure functions over ScoredPassage lists:

* pins: for each identifier of the query, the best keyword hit that contains it whole is kept
  in the top k whatever its fused score (the pin counts towards the per-source cap but is
  never removed by it);
* near-duplicates: a passage whose word 3-shingles overlap an already chosen passage's by at
  least NEAR_DUPLICATE_JACCARD is dropped (the better-ranked copy stays);
* per-source cap: at most `max_per_source` passages of one source (0: no cap).

The result keeps the fused order; pinned passages are marked so the caller can see why a
low-scored passage is there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace

from services.retriever.analysis import mentions, words
from services.retriever.models import Chunk, ScoredPassage

NEAR_DUPLICATE_JACCARD = 0.9
_SHINGLE = 3


def shingles(text: str) -> frozenset[tuple[str, ...]]:
    """Word 3-grams of a text, lower-cased (a text shorter than 3 words is its own shingle)."""
    tokens = [w.lower() for w in words(text)]
    if len(tokens) < _SHINGLE:
        return frozenset({tuple(tokens)})
    return frozenset(tuple(tokens[i : i + _SHINGLE]) for i in range(len(tokens) - _SHINGLE + 1))


def jaccard(a: frozenset[tuple[str, ...]], b: frozenset[tuple[str, ...]]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def exact_match_pins(
    identifiers: Sequence[str], keyword_hits: Iterable[Chunk], limit: int
) -> dict[str, tuple[str, ...]]:
    """Chunk id -> identifiers it is pinned for: per identifier, the first (best) keyword hit
    containing it whole. At most `limit` chunks are pinned, earlier identifiers first."""
    if not identifiers or limit < 1:
        return {}
    wanted = list(dict.fromkeys(identifiers))
    pins: dict[str, list[str]] = {}
    for chunk in keyword_hits:
        found = [ident for ident in wanted if mentions(chunk.text, ident)]
        if found:
            if chunk.id not in pins and len(pins) >= limit:
                break
            pins.setdefault(chunk.id, []).extend(found)
            wanted = [ident for ident in wanted if ident not in found]
        if not wanted:
            break
    return {chunk_id: tuple(idents) for chunk_id, idents in pins.items()}


def matched_identifiers(text: str, identifiers: Sequence[str]) -> tuple[str, ...]:
    """The query identifiers that `text` contains as whole words."""
    return tuple(ident for ident in identifiers if mentions(text, ident))


def select_passages(
    ranked: Sequence[ScoredPassage],
    k: int,
    *,
    max_per_source: int = 0,
    pinned: Iterable[str] = (),
    drop_near_duplicates: bool = True,
) -> list[ScoredPassage]:
    """The top k of `ranked` (best first) after pins, near-duplicate removal and the cap.

    Only pins that would not have made the top k on their own are marked `pinned`.
    """
    natural = _select(ranked, k, max_per_source, set(), drop_near_duplicates)
    natural_ids = {p.chunk.id for p in natural}
    missing = {chunk_id for chunk_id in pinned if chunk_id not in natural_ids}
    if not missing:
        return natural
    forced = _select(ranked, k, max_per_source, set(pinned), drop_near_duplicates)
    return [replace(p, pinned=True) if p.chunk.id in missing else p for p in forced]


def _select(
    ranked: Sequence[ScoredPassage],
    k: int,
    max_per_source: int,
    pinned: set[str],
    drop_near_duplicates: bool,
) -> list[ScoredPassage]:
    chosen: list[tuple[int, ScoredPassage]] = []
    chosen_shingles: list[frozenset[tuple[str, ...]]] = []
    per_source: Counter[str] = Counter()

    def admit(position: int, passage: ScoredPassage, is_pin: bool) -> None:
        source = passage.chunk.source
        if not is_pin and max_per_source and per_source[source] >= max_per_source:
            return
        if drop_near_duplicates:
            own = shingles(passage.chunk.text)
            if any(jaccard(own, other) >= NEAR_DUPLICATE_JACCARD for other in chosen_shingles):
                return
            chosen_shingles.append(own)
        per_source[source] += 1
        chosen.append((position, passage))

    # Pins first (best-ranked first, at most k), then everything else in fused order.
    for position, passage in enumerate(ranked):
        if passage.chunk.id in pinned and len(chosen) < k:
            admit(position, passage, True)
    for position, passage in enumerate(ranked):
        if len(chosen) >= k:
            break
        if passage.chunk.id not in pinned:
            admit(position, passage, False)
    chosen.sort(key=lambda item: item[0])
    return [passage for _, passage in chosen]
