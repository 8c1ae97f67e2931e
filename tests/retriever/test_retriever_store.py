"""LanceDB store: filters as SQL, empty stores, reopening, index refresh, embedder basics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from raildebug.domain import PassageFilter
from raildebug.errors import InvalidRequest, NotReady
from services.retriever.chunking import chunk_document
from services.retriever.embedding import Embedder
from services.retriever.models import SourceDocument
from services.retriever.ports import SourceVersion
from services.retriever.store import LanceChunkStore, build_where, sql_string


def test_build_where_quotes_values() -> None:
    assert build_where(PassageFilter()) is None
    where = build_where(
        PassageFilter(
            kinds=("doc", "code"),
            languages=("c",),
            source_prefix="docs/it's",
            metadata={"subsystem": "x' OR '1'='1", "version": ""},
        )
    )
    assert where == (
        "(kind IN ('code', 'doc')) AND (language IN ('c')) AND "
        "(starts_with(source, 'docs/it''s')) AND (subsystem = 'x'' OR ''1''=''1')"
    )
    assert sql_string("a\\b'c") == "'a\\b''c'"


def test_build_where_rejects_unknown_metadata_key() -> None:
    with pytest.raises(InvalidRequest, match="filterable keys are: subsystem, version, component"):
        build_where(PassageFilter(metadata={"owner": "me"}))


def test_empty_store_answers_without_a_table(tmp_path: Path) -> None:
    store = LanceChunkStore(tmp_path / "empty", 4)
    assert store.count() == 0
    assert store.keyword_search("pm_lock_timeout_ms", 10) == []
    assert store.vector_search(np.ones(4, dtype=np.float32), 10) == []
    assert store.source_hash("docs/a.md") is None
    assert store.delete_source("docs/a.md") == 0
    stats = store.stats()
    assert (stats.passages, stats.sources, stats.passages_by_kind) == (0, 0, {})
    assert stats.backend == "lancedb"


def _unit(rows: int, dim: int, seed: int) -> npt.NDArray[np.float32]:
    vectors = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    unit: npt.NDArray[np.float32] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit


def test_rows_written_after_index_creation_are_searchable_and_indexed(tmp_path: Path) -> None:
    store = LanceChunkStore(tmp_path / "s", 8, embedding_model="test-model")
    first = chunk_document(SourceDocument("docs/a.md", "# A\n\nalpha interlocking text\n"))
    store.replace_source("docs/a.md", first, _unit(len(first), 8, 1), "h1")
    second = chunk_document(SourceDocument("docs/b.md", "# B\n\nbeta zebra_token_42 text\n"))
    # written without a refresh: found through Lance's flat scan of unindexed rows
    store.replace_source("docs/b.md", second, _unit(len(second), 8, 2), "h2", refresh=False)
    assert [c.source for c, _ in store.keyword_search("zebra_token_42", 5)] == ["docs/b.md"]
    store.refresh_indexes()
    assert [c.source for c, _ in store.keyword_search("zebra_token_42", 5)] == ["docs/b.md"]
    table = store._table
    assert table is not None
    (fts,) = [i for i in table.list_indices() if i.index_type == "FTS"]
    fts_stats = table.index_stats(fts.name)
    assert fts_stats is not None and fts_stats.num_unindexed_rows == 0
    assert store.source_hash("docs/b.md") == "h2"

    # cosine similarity comes back as 1 - distance: the row's own vector scores 1
    hits = store.vector_search(_unit(1, 8, 2)[0], 1)
    assert hits[0][0].source == "docs/b.md"
    assert hits[0][1] == pytest.approx(1.0, abs=1e-5)

    reopened = LanceChunkStore(tmp_path / "s", 8, embedding_model="test-model")
    assert reopened.count() == 2
    assert reopened.stats().sources == 2
    with pytest.raises(NotReady, match="8-dimensional"):
        LanceChunkStore(tmp_path / "s", 16)
    with pytest.raises(NotReady, match="test-model"):
        LanceChunkStore(tmp_path / "s", 8, embedding_model="other-model")


def test_embedder_normalises_and_caches(embedder: Embedder) -> None:
    assert embedder.dimension == 384
    assert embedder.model_name == "sentence-transformers/all-MiniLM-L6-v2"
    matrix = embedder.encode(["point fails to lock", "brake at standstill"])
    assert matrix.shape == (2, 384) and matrix.dtype == np.float32
    assert np.linalg.norm(matrix, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert embedder.encode([]).shape == (0, 384)
    query = embedder.encode_query("point fails to lock")
    assert embedder.encode_query("point fails to lock") is query
    assert not query.flags.writeable
    assert np.allclose(query, matrix[0], atol=1e-5)


def test_large_tables_get_a_vector_index_with_exact_self_match(tmp_path: Path) -> None:
    store = LanceChunkStore(tmp_path / "big", 8, vector_index_min_rows=300)
    docs = [SourceDocument(f"docs/{i}.md", f"# Doc {i}\n\nrow {i} text\n") for i in range(320)]
    vectors = _unit(len(docs), 8, 7)
    for start in (0, 160):
        versions = [
            SourceVersion(doc.source, chunk_document(doc), vectors[i : i + 1], "h")
            for i, doc in enumerate(docs[start : start + 160], start)
        ]
        store.replace_sources(versions, refresh=False)
        assert not store.has_vector_index()
    store.refresh_indexes()
    assert store.has_vector_index()
    for row in (0, 123, 319):
        (hit, similarity), *_ = store.vector_search(vectors[row], 3)
        assert hit.source == f"docs/{row}.md" and similarity == pytest.approx(1.0, abs=1e-2)
    exact = store.vector_search(vectors[5], 10, exact=True)
    assert exact[0][0].source == "docs/5.md"
