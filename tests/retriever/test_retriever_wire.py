"""Protobuf conversions of the fields added for ranking explanations and duplicates."""

from __future__ import annotations

import pytest

from raildebug.v1 import retriever_pb2
from services.retriever.models import (
    Chunk,
    DuplicateDocument,
    IngestReport,
    ScoredPassage,
    SearchResult,
    SourceDocument,
)
from services.retriever.wire import (
    document_from_wire,
    document_to_wire,
    query_from_wire,
    report_to_wire,
    search_result_to_wire,
)


def test_cap_is_unset_zero_or_a_number_on_the_wire() -> None:
    assert query_from_wire(retriever_pb2.SearchRequest(query="q")).max_per_source is None
    capped = retriever_pb2.SearchRequest(query="q", max_per_source=0)
    assert query_from_wire(capped).max_per_source == 0  # explicit 0: no cap
    assert (
        query_from_wire(retriever_pb2.SearchRequest(query="q", max_per_source=2)).max_per_source
        == 2
    )


def test_search_result_carries_the_explanation() -> None:
    chunk = Chunk("id1", "docs/a.md", "E73-B text", 3, 4, "doc", "markdown", "A > E73-B")
    hit = ScoredPassage(chunk, 7.5, 0.4, 0.3, exact_matches=("e73-b",), pinned=True)
    message = search_result_to_wire(SearchResult([hit], store_passages=9, took_ms=1.5, alpha=0.25))
    assert message.alpha == 0.25
    (passage,) = message.passages
    assert list(passage.exact_matches) == ["e73-b"] and passage.pinned
    assert passage.keyword_score == 7.5
    assert passage.fused_score == pytest.approx(0.3)
    assert not passage.HasField("rerank_score")
    reranked = search_result_to_wire(
        SearchResult([ScoredPassage(chunk, 0, 0, 0, rerank_score=2.0)], 1, 0)
    )
    assert reranked.passages[0].rerank_score == 2.0


def test_ingest_summary_lists_duplicates() -> None:
    report = IngestReport(documents_received=2, documents_written=1)
    report.duplicates.append(DuplicateDocument("vendor/a.md", "docs/a.md"))
    summary = report_to_wire(report)
    assert [(d.source, d.stored_as) for d in summary.duplicates] == [("vendor/a.md", "docs/a.md")]


def test_ingest_document_round_trips_with_its_title() -> None:
    document = SourceDocument(
        "p0521", "The accepting RBC takes over.", "text", "text", {"subsystem": "rbc"}, "Handover"
    )
    assert document_from_wire(document_to_wire(document)) == document
