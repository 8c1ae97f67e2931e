"""The keyword analyzer: identifiers whole and split, prose stemmed, same terms for queries."""

from __future__ import annotations

import pytest

from services.retriever.analysis import analyze, analyze_all, identifiers, is_identifier, mentions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pm_lock_timeout_ms", ["pm_lock_timeout_ms", "pm", "lock", "timeout", "ms"]),
        ("BaliseDecoder", ["balisedecoder", "balis", "decod"]),
        ("E73-B", ["e73-b", "e73"]),  # one-letter parts carry no meaning on their own
        ("SIXL-2291", ["sixl-2291", "sixl", "2291"]),
        ("Safe_Link.Send", ["safe_link.send", "safe_link", "safe", "link", "send"]),
        ("std::vector", ["std::vector", "std", "vector"]),
        ("P12", ["p12"]),  # letters and their digits stay together
        ("cfg.pm.lock_retry", ["cfg.pm.lock_retry", "lock_retry", "cfg", "pm", "lock", "retri"]),
    ],
)
def test_identifiers_are_indexed_whole_and_split(text: str, expected: list[str]) -> None:
    assert analyze(text) == expected


def test_prose_is_stemmed_and_function_words_dropped() -> None:
    assert analyze("The points were locking slowly after the throws") == [
        "point",
        "lock",
        "slowli",
        "after",
        "throw",
    ]
    # contractions and single letters do not become terms
    assert analyze("It doesn't detect a thing") == ["detect", "thing"]


def test_identifiers_are_never_stemmed_but_their_parts_are() -> None:
    terms = analyze("tc_flicker_limits")
    assert terms[0] == "tc_flicker_limits"  # whole, as written
    assert "limit" in terms  # the part, stemmed like prose


def test_query_and_document_meet_on_shared_terms() -> None:
    document = set(analyze("raise E73-B when pm_lock_timeout_ms expires"))
    assert set(analyze("locking timeouts")) <= document  # prose finds the identifier's parts
    assert "e73-b" in document and "e73-b" in analyze("why E73-B?")  # exact code, both sides
    assert "e73-b" not in analyze("E73-C")


def test_query_syntax_characters_are_plain_separators() -> None:
    assert analyze('error "E73-B" (lock) AND NOT OR') == ["error", "e73-b", "e73", "lock", "not"]
    assert analyze("what is it?") == []


def test_analyze_all_joins_terms_for_the_index_column() -> None:
    assert analyze_all(("Points > E73-B", "Lock timeout")) == "point e73-b e73 lock timeout"


def test_identifier_detection() -> None:
    assert identifiers("E73-B on P12: check pm_lock_timeout_ms and BaliseDecoder, Packet 44") == [
        "e73-b",
        "p12",
        "pm_lock_timeout_ms",
        "balisedecoder",
    ]
    assert not is_identifier("ETCS")  # an acronym is prose
    assert not is_identifier("4.3.1")  # a version without letters is not pinned
    assert is_identifier("4.3.x")


def test_mentions_matches_whole_identifiers_only() -> None:
    assert mentions("raised E73-B after the throw", "e73-b")
    assert mentions("see E73-B.", "E73-B")  # sentence punctuation is not part of the code
    assert not mentions("E73-BX is different", "e73-b")
    assert not mentions("pm_lock_timeout_ms", "pm_lock")
    assert mentions("cfg->pm_lock_timeout_ms = 1500;", "pm_lock_timeout_ms")
