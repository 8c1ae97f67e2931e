"""Prompt-lookup drafting (no model): what it drafts, from where, and how its length adapts."""

from __future__ import annotations

from raildebug.contracts import outcome_from_wire, outcome_to_wire
from raildebug.domain import FinishReason, GenerationOutcome
from services.inference.speculation import MIN_NGRAM, PromptLookup


def _lookup(tokens: list[int], max_ngram: int = 4, max_draft: int = 8) -> PromptLookup:
    lookup = PromptLookup(max_ngram, max_draft)
    lookup.extend(tokens)
    return lookup


def test_drafts_what_followed_the_tail_the_last_time_it_occurred() -> None:
    #           0  1  2  3  4  5  6  7  8  9 10 11 12
    tokens = [7, 1, 2, 3, 40, 41, 9, 1, 2, 3, 50, 51, 8, 1, 2, 3]
    assert _lookup(tokens).draft(3) == [50, 51, 8]  # the latest earlier "1 2 3", not the first


def test_prefers_the_longest_matching_ngram() -> None:
    # "2 3 4" last occurred before 60, the longer "1 2 3 4" only before 40
    tokens = [1, 2, 3, 4, 40, 41, 9, 2, 3, 4, 60, 61, 1, 2, 3, 4]
    assert _lookup(tokens, max_ngram=4).draft(2) == [40, 41]
    assert _lookup(tokens, max_ngram=3).draft(2) == [60, 61]


def test_never_drafts_from_the_tail_itself_or_from_too_short_a_match() -> None:
    assert _lookup([1, 2, 3, 4, 5]).draft(4) == []  # the tail "3 4 5" occurs only once
    assert MIN_NGRAM == 3
    assert _lookup([1, 2, 9, 1, 2]).draft(4) == []  # a 2-token match is too short
    assert _lookup([1, 2, 3, 1, 2, 3]).draft(0) == []


def test_a_draft_stops_at_the_end_of_what_is_known() -> None:
    assert _lookup([1, 2, 3, 4, 1, 2, 3]).draft(8) == [4, 1, 2, 3]


def test_the_index_follows_tokens_appended_one_at_a_time() -> None:
    lookup = _lookup([5, 6, 7, 8])
    for token in [0, 5, 6, 7]:
        lookup.extend([token])
    assert lookup.draft(2) == [8, 0]


def test_the_draft_length_halves_after_a_miss_and_doubles_after_a_full_hit() -> None:
    lookup = _lookup([1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3], max_draft=8)
    assert len(lookup.draft(8)) == 8
    lookup.settle(8, 0)
    assert len(lookup.draft(8)) == 4
    lookup.settle(4, 0)
    lookup.settle(2, 0)
    lookup.settle(1, 0)
    assert len(lookup.draft(8)) == 1  # never below one: a run of copying can start again
    lookup.settle(1, 1)
    assert len(lookup.draft(8)) == 2
    lookup.settle(2, 1)  # partly accepted: unchanged
    assert len(lookup.draft(8)) == 2
    assert (lookup.drafted, lookup.accepted) == (18, 2)


def test_draft_counts_travel_over_the_wire() -> None:
    outcome = GenerationOutcome(
        finish_reason=FinishReason.EOS,
        prompt_tokens=900,
        completion_tokens=40,
        cached_prompt_tokens=0,
        queue_ms=1.0,
        time_to_first_token_ms=2.0,
        prefill_ms=3.0,
        decode_ms=4.0,
        total_ms=10.0,
        model="m",
        drafted_tokens=30,
        accepted_draft_tokens=21,
    )
    back = outcome_from_wire(outcome_to_wire(outcome))
    assert (back.drafted_tokens, back.accepted_draft_tokens) == (30, 21)
