"""The storage interface RetrievalIndex depends on, so a backend can be swapped.

LanceChunkStore (embedded, on disk) and WeaviateChunkStore (a Weaviate server: a collection, a
BM25 property holding the analyzed terms, our vectors) implement it; the contract tests in
tests/retriever/test_store_contract.py hold both to the same behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from raildebug.domain import PassageFilter
from services.retriever.models import Chunk, FusionMethod, KeywordAnalyzer, StoreStats

Hits = list[tuple[Chunk, float]]


@dataclass(frozen=True)
class SourceVersion:
    """The complete new state of one source: its chunks, their vectors and its hashes."""

    source: str
    chunks: Sequence[Chunk]
    vectors: npt.NDArray[np.float32]
    source_hash: str
    document_sha256: str = ""


class EmbeddingModel(Protocol):
    """Turns chunk and query text into unit vectors (services.retriever.embedding.Embedder)."""

    model_name: str
    dimension: int

    def encode(
        self, texts: Sequence[str], batch_size: int | None = None
    ) -> npt.NDArray[np.float32]: ...

    def encode_query(self, text: str) -> npt.NDArray[np.float32]: ...


class ChunkStore(Protocol):
    """Chunks with their vectors; writes are per source and atomic, reads never block."""

    def replace_source(
        self,
        source: str,
        chunks: Sequence[Chunk],
        vectors: npt.NDArray[np.float32],
        source_hash: str,
        *,
        document_sha256: str = "",
        refresh: bool = True,
    ) -> int: ...

    def replace_sources(
        self, versions: Sequence[SourceVersion], *, refresh: bool = True
    ) -> int: ...

    def delete_source(self, source: str, *, refresh: bool = True) -> int: ...

    def refresh_indexes(self) -> None: ...

    def source_hashes(self) -> dict[str, str]: ...

    def documents_by_sha256(self) -> dict[str, str]: ...

    def keyword_search(
        self,
        text: str,
        limit: int,
        passage_filter: PassageFilter | None = None,
        *,
        analyzer: KeywordAnalyzer = KeywordAnalyzer.IDENTIFIER,
    ) -> Hits: ...

    def vector_search(
        self,
        vector: npt.NDArray[np.float32],
        limit: int,
        passage_filter: PassageFilter | None = None,
    ) -> Hits: ...

    def count(self, passage_filter: PassageFilter | None = None) -> int: ...

    def stats(self) -> StoreStats: ...

    def ping(self) -> None:
        """Raise NotReady when the store cannot serve (its server is unreachable)."""
        ...


@runtime_checkable
class NativeHybridStore(Protocol):
    """A store that can also fuse both legs itself (Weaviate's hybrid query)."""

    def native_hybrid_search(
        self,
        text: str,
        vector: npt.NDArray[np.float32],
        limit: int,
        alpha: float,
        fusion: FusionMethod = FusionMethod.RELATIVE_SCORE,
        passage_filter: PassageFilter | None = None,
        *,
        analyzer: KeywordAnalyzer = KeywordAnalyzer.IDENTIFIER,
    ) -> Hits: ...
