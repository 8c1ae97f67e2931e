"""Plain data types of the retriever core (no gRPC, no storage details)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from raildebug.domain import PassageFilter

# Metadata keys that can be filtered on; other keys given at ingest are stored but not filterable.
FILTERABLE_METADATA = ("subsystem", "version", "component")

DEFAULT_K = 5
MAX_K = 100
DEFAULT_ALPHA = 0.5
DEFAULT_MAX_PER_SOURCE = 3


class FusionMethod(StrEnum):
    """How the keyword and vector rankings are combined (names follow Weaviate's)."""

    RELATIVE_SCORE = "relativeScoreFusion"
    RANKED = "rankedFusion"


class KeywordAnalyzer(StrEnum):
    """How the keyword leg tokenizes: ours, or Weaviate's default (evaluation baseline only)."""

    IDENTIFIER = "identifier"  # identifiers whole and split, prose stemmed
    PLAIN = "plain"  # lower-cased alphanumeric words, no stemming


@dataclass(frozen=True)
class SourceDocument:
    """A whole file handed to ingestion; `source` is its identity (path relative to the root)."""

    source: str
    content: str
    kind: str = ""  # "doc" | "code" | "text"; empty: inferred from the extension
    language: str = ""  # empty: inferred from the extension
    metadata: dict[str, str] = field(default_factory=dict)
    # The document's own title (a passage title, a PDF's name): chunks without a heading of
    # their own carry it, so a body chunk is never embedded or matched without its subject.
    title: str = ""


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
class SearchQuery:
    text: str
    k: int = DEFAULT_K
    alpha: float = DEFAULT_ALPHA
    fusion: FusionMethod = FusionMethod.RELATIVE_SCORE
    filter: PassageFilter = field(default_factory=PassageFilter)
    # Most passages from one source; None: the index's default, 0: no cap.
    max_per_source: int | None = None


@dataclass(frozen=True)
class RankingProfile:
    """Which ranking safeguards run; serving uses the default, evaluation compares others."""

    analyzer: KeywordAnalyzer = KeywordAnalyzer.IDENTIFIER
    pin_exact_identifiers: bool = True
    drop_near_duplicates: bool = True
    # Scale a hybrid alpha (0 < alpha < 1) by 1 - the query's identifier share.
    identifier_weighting: bool = True
    # Rank with the store's own hybrid query (Weaviate fuses) instead of fusing its two legs.
    native_hybrid: bool = False


SERVING_PROFILE = RankingProfile()
# What a stock Weaviate hybrid query does: word tokenizer, plain fusion, nothing else.
WEAVIATE_PROFILE = RankingProfile(
    analyzer=KeywordAnalyzer.PLAIN,
    pin_exact_identifiers=False,
    drop_near_duplicates=False,
    identifier_weighting=False,
)
# The same ranking fused by Weaviate itself (weaviate store only): checks WEAVIATE_PROFILE.
WEAVIATE_NATIVE_PROFILE = RankingProfile(
    analyzer=KeywordAnalyzer.PLAIN,
    pin_exact_identifiers=False,
    drop_near_duplicates=False,
    identifier_weighting=False,
    native_hybrid=True,
)


@dataclass(frozen=True)
class ScoredPassage:
    """A search hit with the score of each leg, so callers can see why it ranked."""

    chunk: Chunk
    keyword_score: float
    vector_score: float
    fused_score: float
    # Query identifiers this passage contains as whole words.
    exact_matches: tuple[str, ...] = ()
    # Kept in the top k by the exact-identifier guarantee although its fused score was lower.
    pinned: bool = False
    # Score of the reranking stage, when one is configured.
    rerank_score: float | None = None


@dataclass(frozen=True)
class SearchResult:
    passages: list[ScoredPassage]
    store_passages: int
    took_ms: float
    # The vector weight actually used (differs from the request's for identifier queries).
    alpha: float = DEFAULT_ALPHA


@dataclass(frozen=True)
class IngestFailure:
    source: str
    message: str


@dataclass(frozen=True)
class DuplicateDocument:
    """A document whose content is already stored under another source, so not stored again."""

    source: str
    stored_as: str


@dataclass
class IngestReport:
    documents_received: int = 0
    documents_written: int = 0
    documents_unchanged: int = 0
    chunks_written: int = 0
    errors: list[IngestFailure] = field(default_factory=list)
    duplicates: list[DuplicateDocument] = field(default_factory=list)


@dataclass(frozen=True)
class StoreStats:
    passages: int
    sources: int
    embedding_model: str
    embedding_dim: int
    backend: str
    passages_by_kind: dict[str, int]
