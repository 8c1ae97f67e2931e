"""Plain data types of the retriever core (no gRPC, no storage details)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

# Metadata keys that can be filtered on; other keys given at ingest are stored but not filterable.
FILTERABLE_METADATA = ("subsystem", "version", "component")

DEFAULT_K = 5
MAX_K = 100
DEFAULT_ALPHA = 0.5


class FusionMethod(StrEnum):
    """How the keyword and vector rankings are combined (names follow Weaviate's)."""

    RELATIVE_SCORE = "relativeScoreFusion"
    RANKED = "rankedFusion"


@dataclass(frozen=True)
class SourceDocument:
    """A whole file handed to ingestion; `source` is its identity (path relative to the root)."""

    source: str
    content: str
    kind: str = ""  # "doc" | "code" | "text"; empty: inferred from the extension
    language: str = ""  # empty: inferred from the extension
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Chunk:
    """A stored, searchable piece of a source document."""

    id: str
    source: str
    text: str
    line_start: int
    line_end: int
    kind: str
    language: str
    title: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PassageFilter:
    """Restricts candidates before ranking; empty fields do not filter."""

    kinds: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    source_prefix: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchQuery:
    text: str
    k: int = DEFAULT_K
    alpha: float = DEFAULT_ALPHA
    fusion: FusionMethod = FusionMethod.RELATIVE_SCORE
    filter: PassageFilter = field(default_factory=PassageFilter)


@dataclass(frozen=True)
class ScoredPassage:
    """A search hit with the score of each leg, so callers can see why it ranked."""

    chunk: Chunk
    keyword_score: float
    vector_score: float
    fused_score: float


@dataclass(frozen=True)
class SearchResult:
    passages: list[ScoredPassage]
    store_passages: int
    took_ms: float


@dataclass(frozen=True)
class IngestFailure:
    source: str
    message: str


@dataclass
class IngestReport:
    documents_received: int = 0
    documents_written: int = 0
    documents_unchanged: int = 0
    chunks_written: int = 0
    errors: list[IngestFailure] = field(default_factory=list)


@dataclass(frozen=True)
class StoreStats:
    passages: int
    sources: int
    embedding_model: str
    embedding_dim: int
    backend: str
    passages_by_kind: dict[str, int]
