"""RetrievalIndex end to end: real embedder, real LanceDB in a temporary directory."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from raildebug.domain import PassageFilter
from raildebug.errors import InvalidRequest
from services.retriever.chunking import chunk_document
from services.retriever.embedding import Embedder
from services.retriever.index import RetrievalIndex
from services.retriever.models import FusionMethod, IngestFailure, SearchQuery, SourceDocument


def total_chunks(docs: list[SourceDocument]) -> int:
    return sum(len(chunk_document(doc)) for doc in docs)


def sources(index: RetrievalIndex, query: SearchQuery) -> list[str]:
    return [p.chunk.source for p in index.search(query).passages]


def test_empty_store_search_returns_nothing(index: RetrievalIndex) -> None:
    result = index.search(SearchQuery("why does P12 fail to lock"))
    assert result.passages == []
    assert result.store_passages == 0
    stats = index.stats()
    assert (stats.passages, stats.sources) == (0, 0)
    assert stats.embedding_dim == 384


def test_ingest_then_keyword_finds_identifier(
    loaded_index: RetrievalIndex, corpus: list[SourceDocument]
) -> None:
    result = loaded_index.search(SearchQuery("pm_lock_timeout_ms", k=3, alpha=0.0))
    assert result.store_passages == total_chunks(corpus)
    assert result.passages
    top = result.passages[0]
    assert "pm_lock_timeout_ms" in top.chunk.text
    assert top.keyword_score > 0
    assert top.vector_score == 0.0  # alpha 0: the vector leg is not run (as in Weaviate)
    assert {p.chunk.source for p in result.passages if p.keyword_score > 0} == {
        "docs/errors-points.md",
        "src/pmc/pmc_lock.c",
    }
    assert top.chunk.line_start >= 1 and top.chunk.line_end >= top.chunk.line_start


def test_vector_finds_paraphrase(loaded_index: RetrievalIndex) -> None:
    query = SearchQuery("why did the parked engine suddenly slam on its brakes", k=2, alpha=1.0)
    result = loaded_index.search(query)
    top = result.passages[0]
    assert top.chunk.source == "docs/troubleshooting-brake.md"
    assert top.chunk.title == "Troubleshooting — Brake Supervision > Emergency brake at standstill"
    assert 0.3 < top.vector_score <= 1.0
    assert top.fused_score == pytest.approx(1.0)  # best vector hit, min-max normalised


@pytest.mark.parametrize("fusion", list(FusionMethod))
def test_hybrid_search_reports_both_legs(
    loaded_index: RetrievalIndex, fusion: FusionMethod
) -> None:
    result = loaded_index.search(
        SearchQuery("E73-B lock not confirmed within pm_lock_timeout_ms", k=5, fusion=fusion)
    )
    passages = result.passages
    assert 0 < len(passages) <= 5
    assert passages[0].chunk.source in {"docs/errors-points.md", "src/pmc/pmc_lock.c"}
    assert passages[0].keyword_score > 0 and passages[0].vector_score > 0
    fused = [p.fused_score for p in passages]
    assert fused == sorted(fused, reverse=True)
    assert result.took_ms >= 0


def test_reingest_unchanged_is_skipped(
    loaded_index: RetrievalIndex, corpus: list[SourceDocument]
) -> None:
    before = loaded_index.stats().passages
    seen: list[int] = []
    report = loaded_index.ingest(list(corpus), progress=seen.append)
    assert report.documents_received == len(corpus)
    assert report.documents_unchanged == len(corpus)
    assert (report.documents_written, report.chunks_written, report.errors) == (0, 0, [])
    assert loaded_index.stats().passages == before
    assert seen == list(range(1, len(corpus) + 1))


def test_metadata_change_rewrites_document(
    loaded_index: RetrievalIndex, corpus: list[SourceDocument]
) -> None:
    doc = replace(corpus[1], metadata={"subsystem": "bsi"})
    report = loaded_index.ingest([doc])
    assert (report.documents_written, report.documents_unchanged) == (1, 0)
    found = loaded_index.search(
        SearchQuery("emergency brake", filter=PassageFilter(metadata={"subsystem": "bsi"}))
    )
    assert {p.chunk.source for p in found.passages} == {"docs/troubleshooting-brake.md"}
    assert all(p.chunk.metadata == {"subsystem": "bsi"} for p in found.passages)


def test_changed_source_replaces_its_chunks(
    loaded_index: RetrievalIndex, corpus: list[SourceDocument]
) -> None:
    assert sources(loaded_index, SearchQuery("adjustment slide", alpha=0.0)) == [
        "docs/errors-points.md"
    ]
    new_text = corpus[0].content.replace(
        "Check the lock detection contacts and the adjustment of the lock slide.",
        "Replace the worn crankshaft_bushing_z9 of the point machine.",
    )
    changed = SourceDocument("docs/errors-points.md", new_text, metadata={"subsystem": "points"})
    report = loaded_index.ingest([changed])
    assert (report.documents_written, report.documents_unchanged) == (1, 0)
    assert report.chunks_written == len(chunk_document(changed))

    assert "docs/errors-points.md" not in sources(loaded_index, SearchQuery("slide", alpha=0.0))
    assert sources(loaded_index, SearchQuery("crankshaft_bushing_z9", k=1, alpha=0.0)) == [
        "docs/errors-points.md"
    ]
    expected = total_chunks([changed, *corpus[1:]])
    assert loaded_index.stats().passages == expected
    assert loaded_index.search(SearchQuery("point")).store_passages == expected


def test_delete_source(loaded_index: RetrievalIndex, corpus: list[SourceDocument]) -> None:
    code_chunks = len(chunk_document(corpus[3]))
    assert loaded_index.delete_source("src/pmc/pmc_lock.c") == code_chunks
    assert loaded_index.delete_source("src/pmc/pmc_lock.c") == 0
    assert "src/pmc/pmc_lock.c" not in sources(
        loaded_index, SearchQuery("pm_check_lock", k=10, alpha=0.0)
    )
    stats = loaded_index.stats()
    assert stats.sources == len(corpus) - 1
    assert stats.passages == total_chunks(corpus) - code_chunks
    assert "code" not in stats.passages_by_kind
    with pytest.raises(InvalidRequest):
        loaded_index.delete_source("  ")


def test_filters(loaded_index: RetrievalIndex) -> None:
    query = SearchQuery("lock timeout", k=20)
    only_code = replace(query, filter=PassageFilter(kinds=("code",)))
    assert set(sources(loaded_index, only_code)) == {"src/pmc/pmc_lock.c"}
    only_c = replace(query, filter=PassageFilter(languages=("c",)))
    assert set(sources(loaded_index, only_c)) == {"src/pmc/pmc_lock.c"}
    docs = replace(query, filter=PassageFilter(source_prefix="docs/"))
    assert all(s.startswith("docs/") for s in sources(loaded_index, docs))
    points = replace(query, filter=PassageFilter(metadata={"subsystem": "points"}))
    assert set(sources(loaded_index, points)) == {"docs/errors-points.md", "src/pmc/pmc_lock.c"}
    combined = replace(
        query, filter=PassageFilter(kinds=("doc",), metadata={"subsystem": "points"})
    )
    assert set(sources(loaded_index, combined)) == {"docs/errors-points.md"}
    injection = replace(query, filter=PassageFilter(metadata={"subsystem": "x' OR '1'='1"}))
    assert sources(loaded_index, injection) == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (SearchQuery("lock", k=0), "k must be"),
        (SearchQuery("lock", k=101), "k must be"),
        (SearchQuery(""), "query text is empty"),
        (SearchQuery("   \n"), "query text is empty"),
        (SearchQuery("lock", alpha=1.5), "alpha must be"),
        (SearchQuery("lock", alpha=-0.1), "alpha must be"),
        (SearchQuery("lock", alpha=math.nan), "alpha must be"),
        (
            SearchQuery("lock", filter=PassageFilter(metadata={"owner": "me"})),
            "filterable keys are: subsystem, version, component",
        ),
        (SearchQuery("lock", filter=PassageFilter(kinds=("video",))), "kinds are: doc, code"),
    ],
)
def test_bad_queries_are_rejected(
    loaded_index: RetrievalIndex, query: SearchQuery, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        loaded_index.search(query)


def test_bad_documents_are_reported_while_others_ingest(
    index: RetrievalIndex, corpus: list[SourceDocument]
) -> None:
    docs = [
        SourceDocument("docs/empty.md", "  \n\n"),
        corpus[1],
        SourceDocument("docs/movie.md", "# x\n", kind="video"),
        SourceDocument("", "# no source\n"),
    ]
    report = index.ingest(docs)
    assert report.documents_received == 4
    assert report.documents_written == 1
    assert [(e.source, e.message.split(":")[0]) for e in report.errors] == [
        ("docs/empty.md", "empty document"),
        ("docs/movie.md", "unknown kind 'video'; use one of"),
        ("", "document has no source; give each document its path"),
    ]
    assert sources(index, SearchQuery("emergency brake", k=1)) == ["docs/troubleshooting-brake.md"]


def test_batches_span_documents_and_reopen_sees_data(
    store_dir: Path, embedder: Embedder, corpus: list[SourceDocument]
) -> None:
    small_batches = RetrievalIndex(store_dir, embedder=embedder, batch_size=2)
    report = small_batches.ingest(corpus)
    assert report.documents_written == len(corpus)
    assert report.chunks_written == total_chunks(corpus)
    reopened = RetrievalIndex(store_dir, embedder=embedder)
    assert reopened.stats().passages == total_chunks(corpus)
    assert reopened.ingest(corpus).documents_unchanged == len(corpus)
    assert sources(reopened, SearchQuery("pm_lock_timeout_ms", k=1, alpha=0.0))


def test_searches_run_while_ingesting(
    loaded_index: RetrievalIndex, corpus: list[SourceDocument]
) -> None:
    failures: list[BaseException] = []
    stop = threading.Event()

    def search_loop() -> None:
        while not stop.is_set():
            try:
                result = loaded_index.search(SearchQuery("pm_lock_timeout_ms", k=3))
                assert result.passages
            except BaseException as exc:  # surfaced in the main thread
                failures.append(exc)
                return

    threads = [threading.Thread(target=search_loop) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for round_no in range(3):
            text = corpus[0].content + f"\nRevision note {round_no}.\n"
            loaded_index.ingest([replace(corpus[0], content=text)])
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []


def test_write_failure_is_isolated_to_its_document(
    index: RetrievalIndex, corpus: list[SourceDocument], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_encode = index.embedder.encode

    def encode(texts: Sequence[str], batch_size: int | None = None) -> npt.NDArray[np.float32]:
        if any("POISON" in text for text in texts):
            raise RuntimeError("embedding backend crashed")
        return real_encode(texts, batch_size)

    monkeypatch.setattr(index.embedder, "encode", encode)
    poisoned = SourceDocument("docs/poison.md", "# Bad\n\nPOISON pill text.\n")
    seen: list[int] = []
    report = index.ingest([corpus[0], poisoned, corpus[1]], progress=seen.append)
    assert report.documents_written == 2
    assert report.errors == [IngestFailure("docs/poison.md", "embedding backend crashed")]
    assert seen == [3]  # all three were in one embedding batch
    assert index.stats().sources == 2
    # the failed document is retried on the next ingest, not mistaken for unchanged
    monkeypatch.setattr(index.embedder, "encode", real_encode)
    assert index.ingest([poisoned]).documents_written == 1
