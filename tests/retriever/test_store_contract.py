"""One behaviour for every ChunkStore: the LanceDB store and the Weaviate store pass the same cases.

Ids, idempotent rewrites, replace and delete semantics, filters, counts, stats and the
identifier-aware BM25 leg. The Weaviate cases run against a real weaviate-server (`service`).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from raildebug.domain import PassageFilter
from raildebug.errors import InvalidRequest
from services.retriever.chunking import chunk_document
from services.retriever.models import Chunk, KeywordAnalyzer, SourceDocument
from services.retriever.ports import ChunkStore, SourceVersion
from services.retriever.store import LanceChunkStore
from tests.support.embedding import DIM, HashEmbedder

POINTS = """\
# Points

## E73-B lock timeout

The lock was not confirmed within pm_lock_timeout_ms after the throw.
"""
PROSE = """\
# Notes

## Lock and timeout

A pm lock may time out; the timeout is given in ms by the operator.
"""
CODE = """\
/* lock supervision */
int pm_check_lock(void) { return pm_cfg.pm_lock_timeout_ms > 0; }
"""
BRAKE = """\
# Brake

## Emergency brake at standstill

The brake supervision latched the emergency brake while parked.
"""


EMBEDDER = HashEmbedder()


def version(doc: SourceDocument, fingerprint: str = "") -> SourceVersion:
    chunks = chunk_document(doc)
    return SourceVersion(
        doc.source,
        chunks,
        EMBEDDER.encode([c.text for c in chunks]),
        fingerprint or f"h-{doc.source}",
        hashlib.sha256(doc.content.encode()).hexdigest(),
    )


def write(store: ChunkStore, doc: SourceDocument, fingerprint: str = "") -> list[Chunk]:
    v = version(doc, fingerprint)
    assert store.replace_source(
        v.source, v.chunks, v.vectors, v.source_hash, document_sha256=v.document_sha256
    ) == len(v.chunks)
    return list(v.chunks)


def corpus() -> list[SourceDocument]:
    return [
        SourceDocument("docs/points.md", POINTS, metadata={"subsystem": "points", "version": "2"}),
        SourceDocument("docs/notes.md", PROSE, metadata={"subsystem": "points"}),
        SourceDocument(
            "src/pmc/lock.c", CODE, metadata={"subsystem": "points", "component": "pmc"}
        ),
        SourceDocument("docs/brake.md", BRAKE, metadata={"subsystem": "brake"}),
    ]


@pytest.fixture(params=["lancedb", pytest.param("weaviate", marks=pytest.mark.service)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChunkStore]:
    if request.param == "lancedb":
        yield LanceChunkStore(tmp_path / "lance", DIM, embedding_model=EMBEDDER.model_name)
        return
    from services.retriever.weaviate_store import WeaviateChunkStore

    server = request.getfixturevalue("weaviate")
    name = f"Contract{uuid.uuid4().hex[:12]}"
    weaviate_store = WeaviateChunkStore(
        server.url,
        DIM,
        embedding_model=EMBEDDER.model_name,
        collection=name,
        grpc_port=server.grpc_port,
        insert_batch_size=3,  # several import calls per source
    )
    try:
        yield weaviate_store
    finally:
        weaviate_store.close()
        with server.client() as client:
            client.collections.delete([name, f"{name}State"])


def ids(hits: Sequence[tuple[Chunk, float]]) -> list[str]:
    return [chunk.id for chunk, _ in hits]


def sources(hits: Sequence[tuple[Chunk, float]]) -> list[str]:
    return [chunk.source for chunk, _ in hits]


def test_an_empty_store_answers_everything(store: ChunkStore) -> None:
    assert store.count() == 0
    assert store.keyword_search("E73-B", 10) == []
    assert store.vector_search(EMBEDDER.encode_query("x"), 10) == []
    assert store.delete_source("docs/a.md") == 0
    assert store.source_hashes() == {} and store.documents_by_sha256() == {}
    stats = store.stats()
    assert (stats.passages, stats.sources, stats.passages_by_kind) == (0, 0, {})
    assert (stats.embedding_dim, stats.embedding_model) == (DIM, "hash-test")
    store.refresh_indexes()


def test_chunks_come_back_whole_with_their_ids(store: ChunkStore) -> None:
    written = {c.id: c for doc in corpus() for c in write(store, doc)}
    assert store.count() == len(written)
    hits = store.keyword_search("pm_lock_timeout_ms lock brake", 50)
    assert hits and all(written[chunk.id] == chunk for chunk, _ in hits)
    scores = [score for _, score in hits]
    assert scores == sorted(scores, reverse=True)
    chunk = next(iter(written.values()))
    (best, similarity), *_ = store.vector_search(EMBEDDER.encode_query(chunk.text), 3)
    assert best == chunk and similarity == pytest.approx(1.0, abs=1e-4)
    assert store.source_hashes() == {doc.source: f"h-{doc.source}" for doc in corpus()}
    digests = store.documents_by_sha256()
    assert digests == {
        hashlib.sha256(doc.content.encode()).hexdigest(): doc.source for doc in corpus()
    }


def test_writing_the_same_version_again_changes_nothing(store: ChunkStore) -> None:
    doc = corpus()[0]
    first = write(store, doc)
    write(store, doc)
    store.replace_sources([version(doc)], refresh=False)
    store.refresh_indexes()
    assert store.count() == len(first)
    hits = store.keyword_search("pm_lock_timeout_ms E73-B lock", 50)
    assert sorted(ids(hits)) == sorted(c.id for c in first)
    assert store.stats().sources == 1


def test_replace_leaves_only_the_new_version_and_other_sources_alone(store: ChunkStore) -> None:
    points, notes, code, brake = corpus()
    old = write(store, points)
    write(store, brake)
    new_doc = SourceDocument(points.source, "# Points\n\nzebra_marker_77 replaced the lock text.\n")
    new = write(store, new_doc, "h-new")
    assert store.count() == len(new) + len(chunk_document(brake))
    assert store.keyword_search("E73-B", 10) == []
    assert ids(store.keyword_search("zebra_marker_77", 10)) == [c.id for c in new]
    assert {c.id for c in old}.isdisjoint(ids(store.keyword_search("lock", 50)))
    assert store.source_hashes()[points.source] == "h-new"
    assert sources(store.keyword_search("emergency brake", 10))[0] == brake.source

    # one batch: two sources replaced, one emptied (deleted), one added
    batch = [
        version(SourceDocument(points.source, "# P\n\nthird_version_marker\n"), "h-3"),
        version(notes),
        SourceVersion(brake.source, [], np.zeros((0, DIM), dtype=np.float32), "h-empty"),
        version(code),
    ]
    written = store.replace_sources(batch)
    assert written == sum(len(v.chunks) for v in batch)
    assert store.count() == written
    assert set(store.source_hashes()) == {points.source, notes.source, code.source}
    assert store.keyword_search("emergency", 10) == []
    assert all("zebra" not in c.text for c, _ in store.keyword_search("zebra_marker_77", 10))
    with pytest.raises(ValueError, match="only once"):
        store.replace_sources([version(notes), version(notes)])
    with pytest.raises(ValueError, match="belong"):
        v = version(notes)
        store.replace_sources([SourceVersion("other.md", v.chunks, v.vectors, "h")])


def test_filters_run_before_ranking(store: ChunkStore) -> None:
    for doc in corpus():
        write(store, doc)
    by_kind = store.keyword_search("lock", 50, PassageFilter(kinds=("code",)))
    assert set(sources(by_kind)) == {"src/pmc/lock.c"}
    by_language = store.keyword_search("lock", 50, PassageFilter(languages=("markdown",)))
    assert set(sources(by_language)) == {"docs/points.md", "docs/notes.md"}
    by_prefix = store.vector_search(
        EMBEDDER.encode_query("lock"), 50, PassageFilter(source_prefix="docs/")
    )
    assert set(sources(by_prefix)) == {"docs/points.md", "docs/notes.md", "docs/brake.md"}
    assert store.keyword_search("lock", 50, PassageFilter(source_prefix="doc*")) == []
    by_metadata = store.keyword_search(
        "lock brake", 50, PassageFilter(metadata={"subsystem": "points", "component": "pmc"})
    )
    assert set(sources(by_metadata)) == {"src/pmc/lock.c"}
    assert store.count(PassageFilter(metadata={"subsystem": "brake"})) == len(
        chunk_document(corpus()[3])
    )
    assert store.count(PassageFilter(metadata={"version": "3"})) == 0
    with pytest.raises(InvalidRequest, match="filterable keys are"):
        store.keyword_search("lock", 5, PassageFilter(metadata={"owner": "me"}))


def test_delete_removes_a_source_and_reports_how_many(store: ChunkStore) -> None:
    for doc in corpus():
        write(store, doc)
    total = store.count()
    expected = len(chunk_document(corpus()[0]))
    assert store.delete_source("docs/points.md") == expected
    assert store.delete_source("docs/points.md") == 0
    assert store.count() == total - expected
    assert "docs/points.md" not in store.source_hashes()
    assert "docs/points.md" not in sources(store.keyword_search("lock", 50))


def test_stats_count_passages_sources_and_kinds(store: ChunkStore) -> None:
    for doc in corpus():
        write(store, doc)
    stats = store.stats()
    docs = sum(len(chunk_document(d)) for d in corpus() if d.source.endswith(".md"))
    assert stats.passages == store.count() == docs + len(chunk_document(corpus()[2]))
    assert stats.sources == 4
    assert stats.passages_by_kind == {"code": len(chunk_document(corpus()[2])), "doc": docs}


def test_keyword_search_keeps_identifiers_whole(store: ChunkStore) -> None:
    for doc in corpus():
        write(store, doc)
    # Only points.md and lock.c contain the identifier itself; notes.md has all its parts.
    hits = store.keyword_search("pm_lock_timeout_ms", 10)
    assert set(sources(hits[:2])) == {"docs/points.md", "src/pmc/lock.c"}
    assert sources(hits)[-1] == "docs/notes.md"  # found by the parts, ranked below
    assert sources(store.keyword_search("E73-B", 10)) == ["docs/points.md"]
    # The plain baseline splits it into words, so the prose note matches as well.
    plain = store.keyword_search("pm lock timeout", 10, analyzer=KeywordAnalyzer.PLAIN)
    assert "docs/notes.md" in sources(plain)
    assert store.keyword_search("the and of", 10) == []
    assert store.keyword_search("lock", 0) == []
