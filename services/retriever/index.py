"""The retriever's facade: ingest documents, run hybrid searches, report what is stored.

The gRPC layer calls only this class. It validates requests (raising InvalidRequest with a
message the caller can act on), keeps one bad file from failing a whole ingest, and combines
BM25 and vector hits with Weaviate-compatible fusion (see services.retriever.fusion), then
applies the exact-identifier guarantee, near-duplicate removal and the per-source cap
(services.retriever.ranking), with an optional reranker in between (services.retriever.rerank).

Crash safety: each document is replaced in one store transaction, so a killed ingest leaves
every source either at its old or its new version; the fingerprints stored with the rows make
the re-run skip what was finished and redo the rest, and stable chunk ids make it idempotent.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from raildebug.domain import PassageFilter
from raildebug.errors import InvalidRequest, Misconfigured, clip
from raildebug.limits import (
    MAX_LABEL_CHARS,
    MAX_SOURCE_CHARS,
    MAX_TITLE_CHARS,
    check_label,
    check_metadata,
    check_passage_filter,
    check_text,
)
from raildebug.observability.logging import get_logger
from services.retriever import instruments
from services.retriever.analysis import identifier_share, identifiers
from services.retriever.chunking import CHUNKER_VERSION, chunk_document
from services.retriever.embedding import Embedder
from services.retriever.fusion import ranked_fusion, relative_score_fusion
from services.retriever.models import (
    DEFAULT_MAX_PER_SOURCE,
    FILTERABLE_METADATA,
    MAX_K,
    SERVING_PROFILE,
    Chunk,
    DuplicateDocument,
    FusionMethod,
    IngestFailure,
    IngestReport,
    RankingProfile,
    ScoredPassage,
    SearchQuery,
    SearchResult,
    SourceDocument,
    StoreStats,
)
from services.retriever.ports import ChunkStore, EmbeddingModel, NativeHybridStore, SourceVersion
from services.retriever.ranking import exact_match_pins, matched_identifiers, select_passages
from services.retriever.rerank import Reranker, rerank
from services.retriever.sources import KINDS, resolve_kind_language
from services.retriever.store import LanceChunkStore, check_filter

log = get_logger(__name__)

DEFAULT_BATCH_SIZE = 64
MAX_QUERY_CHARS = 16_000
# Each leg fetches more than k so that a chunk ranked modestly by both legs can still win.
OVERSEARCH_FACTOR = 4
MIN_LEG_LIMIT = 50

Progress = Callable[[int], None]


def embedding_text(chunk: Chunk) -> str:
    """What gets embedded: the heading path / function name gives a bare body its context."""
    return f"{chunk.title}\n{chunk.text}" if chunk.title else chunk.text


@dataclass(frozen=True)
class _Prepared:
    """A document that needs writing: its chunks and the fingerprint to store with them."""

    source: str
    chunks: list[Chunk]
    fingerprint: str
    sha256: str


def content_sha256(doc: SourceDocument) -> str:
    """Identity of a document's content alone: equal digests under two paths are duplicates."""
    return hashlib.sha256(doc.content.encode("utf-8")).hexdigest()


class RetrievalIndex:
    """Hybrid (BM25 + vector) retrieval over ingested docs and code, in LanceDB or Weaviate."""

    def __init__(
        self,
        store_dir: Path,
        embedder: EmbeddingModel | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        store: ChunkStore | None = None,
        reranker: Reranker | None = None,
        max_per_source: int = DEFAULT_MAX_PER_SOURCE,
        hybrid: Literal["fusion", "native"] = "fusion",
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if max_per_source < 0:
            raise ValueError("max_per_source must be 0 (no cap) or more")
        self.embedder: EmbeddingModel = embedder if embedder is not None else Embedder()
        self.batch_size = batch_size
        self.reranker = reranker
        self.max_per_source = max_per_source
        self.store: ChunkStore = (
            store
            if store is not None
            else LanceChunkStore(
                Path(store_dir),
                self.embedder.dimension,
                embedding_model=self.embedder.model_name,
            )
        )
        self._write_lock = threading.Lock()  # one ingest/delete at a time; searches never wait
        # What search() ranks with unless told otherwise (evaluation compares other profiles).
        self.profile = SERVING_PROFILE
        if hybrid == "native":
            if not isinstance(self.store, NativeHybridStore):
                raise Misconfigured(
                    "weaviate_hybrid=native needs a store with a native hybrid query; set "
                    "RAILDEBUG_RETRIEVER_STORE_BACKEND=weaviate or weaviate_hybrid=fusion"
                )
            self.profile = replace(SERVING_PROFILE, native_hybrid=True)

    # --- ingest -------------------------------------------------------------------------------

    def fingerprint(self, doc: SourceDocument) -> str:
        """Hash of everything that shapes a document's rows, to skip unchanged re-ingests.

        Besides the content it covers kind, language, metadata, title, the chunker version and
        the embedding model, so changing any of them rewrites the document.
        """
        kind, language = resolve_kind_language(doc)
        header = json.dumps(
            {
                "chunker": CHUNKER_VERSION,
                "model": self.embedder.model_name,
                "kind": kind,
                "language": language,
                "metadata": dict(sorted(doc.metadata.items())),
                "title": doc.title,
            },
            sort_keys=True,
        )
        digest = hashlib.sha256(header.encode("utf-8"))
        digest.update(b"\0")
        digest.update(doc.content.encode("utf-8"))
        return digest.hexdigest()

    def ingest(
        self, documents: Iterable[SourceDocument], progress: Progress | None = None
    ) -> IngestReport:
        """Chunk, embed and store documents; a failing document is reported, never fatal.

        `progress` is called with the number of documents finished so far (written, unchanged
        or failed); an exception it raises stops the ingest (e.g. a cancelled client), keeping
        what was already written.
        """
        report = IngestReport()
        started = time.perf_counter()
        with self._write_lock:
            pending: list[_Prepared] = []
            pending_chunks = 0
            done = 0
            wrote_any = False

            def finished(count: int = 1) -> None:
                nonlocal done
                done += count
                if progress is not None:
                    progress(done)

            # One scan instead of a lookup per document; kept current as documents are written.
            stored_hashes = self.store.source_hashes()
            holders = self.store.documents_by_sha256()  # content digest -> source storing it
            held = {source: digest for digest, source in holders.items()}  # and back
            try:
                for doc in documents:
                    report.documents_received += 1
                    source = getattr(doc, "source", "") or ""
                    try:
                        prepared = self._prepare(doc, stored_hashes)
                        if prepared is not None:
                            holder = holders.get(prepared.sha256)
                            if holder is not None and holder != prepared.source:
                                wrote_any |= self._store_once(prepared, holder, report)
                                stored_hashes.pop(prepared.source, None)
                                finished()
                                continue
                    except Exception as exc:  # reported per document
                        self._fail(report, source, exc)
                        finished()
                        continue
                    if prepared is None:
                        report.documents_unchanged += 1
                        finished()
                        continue
                    pending.append(prepared)
                    stored_hashes[prepared.source] = prepared.fingerprint
                    old = held.pop(prepared.source, None)
                    if old is not None and holders.get(old) == prepared.source:
                        del holders[old]  # that old content is being replaced
                    holders[prepared.sha256] = prepared.source
                    held[prepared.source] = prepared.sha256
                    pending_chunks += len(prepared.chunks)
                    if pending_chunks >= self.batch_size:
                        wrote_any |= self._flush(pending, report, stored_hashes)
                        finished(len(pending))
                        pending, pending_chunks = [], 0
                if pending:
                    wrote_any |= self._flush(pending, report, stored_hashes)
                    finished(len(pending))
            finally:
                if wrote_any:
                    self.store.refresh_indexes()
        log.info(
            "ingest finished",
            received=report.documents_received,
            written=report.documents_written,
            unchanged=report.documents_unchanged,
            duplicates=len(report.duplicates),
            chunks=report.chunks_written,
            errors=len(report.errors),
        )
        instruments.ingested(
            time.perf_counter() - started,
            written=report.documents_written,
            unchanged=report.documents_unchanged,
            duplicates=len(report.duplicates),
            failed=len(report.errors),
            chunks=report.chunks_written,
            store_size=self.store.count(),
        )
        return report

    def _prepare(self, doc: SourceDocument, stored_hashes: dict[str, str]) -> _Prepared | None:
        """Validate and chunk one document; None when it is stored unchanged."""
        if not isinstance(doc, SourceDocument):
            raise InvalidRequest(f"expected a SourceDocument, got {type(doc).__name__}")
        if not doc.source.strip():
            raise InvalidRequest("document has no source; give each document its path")
        bad_metadata = [
            k for k, v in doc.metadata.items() if not isinstance(k, str) or not isinstance(v, str)
        ]
        if bad_metadata:
            raise InvalidRequest(f"metadata keys and values must be strings: {clip(bad_metadata)}")
        _check_document(doc)
        fingerprint = self.fingerprint(doc)
        if stored_hashes.get(doc.source) == fingerprint:
            return None
        return _Prepared(doc.source, chunk_document(doc), fingerprint, content_sha256(doc))

    def _store_once(self, prepared: _Prepared, holder: str, report: IngestReport) -> bool:
        """Record a document whose content `holder` already stores; drop its own old rows.

        Nothing is written for it: searches cite the holder. Every ingest checks again, so
        once the holder is deleted or changed, re-ingesting stores this document itself.
        """
        report.duplicates.append(DuplicateDocument(source=prepared.source, stored_as=holder))
        return self.store.delete_source(prepared.source, refresh=False) > 0

    def _flush(
        self, pending: list[_Prepared], report: IngestReport, stored_hashes: dict[str, str]
    ) -> bool:
        """Embed the pending documents' chunks in batches and write them in one transaction.

        If the batch fails, each document is retried on its own so that one bad document
        is reported without losing the others.
        """
        texts = [embedding_text(chunk) for doc in pending for chunk in doc.chunks]
        try:
            vectors = self.embedder.encode(texts, batch_size=self.batch_size)
            versions: list[SourceVersion] = []
            offset = 0
            for doc in pending:
                n = len(doc.chunks)
                versions.append(
                    SourceVersion(
                        doc.source,
                        doc.chunks,
                        vectors[offset : offset + n],
                        doc.fingerprint,
                        doc.sha256,
                    )
                )
                offset += n
            self.store.replace_sources(versions, refresh=False)
        except Exception:  # isolate the document that breaks the batch
            log.warning("batch write failed; retrying per document", docs=len(pending))
        else:
            report.documents_written += len(pending)
            report.chunks_written += len(texts)
            return True
        wrote = False
        for doc in pending:
            try:
                doc_vectors = self.embedder.encode([embedding_text(c) for c in doc.chunks])
                self.store.replace_sources(
                    [
                        SourceVersion(
                            doc.source, doc.chunks, doc_vectors, doc.fingerprint, doc.sha256
                        )
                    ],
                    refresh=False,
                )
            except Exception as exc:  # reported per document
                self._fail(report, doc.source, exc)
                stored_hashes.pop(doc.source, None)  # unknown now: a retry must rewrite it
            else:
                wrote = True
                report.documents_written += 1
                report.chunks_written += len(doc.chunks)
        return wrote

    @staticmethod
    def _fail(report: IngestReport, source: str, exc: Exception) -> None:
        message = str(exc) or type(exc).__name__
        if len(source) > MAX_SOURCE_CHARS:  # the summary names it, without echoing all of it
            source = source[:MAX_SOURCE_CHARS] + "…"
        if not isinstance(exc, InvalidRequest):
            log.warning("document failed to ingest", source=source, error=message)
        report.errors.append(IngestFailure(source=source, message=message))

    def delete_source(self, source: str) -> int:
        """Remove every chunk of `source`; returns how many were removed (0 if unknown)."""
        if not source.strip():
            raise InvalidRequest("source is empty; pass the path used at ingest")
        check_label("source", source, MAX_SOURCE_CHARS)
        with self._write_lock:
            deleted = self.store.delete_source(source)
            instruments.store_chunks.set(self.store.count())
            return deleted

    # --- search -------------------------------------------------------------------------------

    def search(self, query: SearchQuery, profile: RankingProfile | None = None) -> SearchResult:
        """Top-k passages by fused BM25 + vector score, each with the reasons for its rank.

        `profile` switches ranking safeguards off for evaluation baselines; serving uses the
        index's own (self.profile).
        """
        profile = self.profile if profile is None else profile
        started = time.perf_counter()
        text, fusion, max_per_source = self._validate(query)
        k, alpha = query.k, effective_alpha(text, float(query.alpha), profile)
        total = self.store.count()
        if total == 0:
            instruments.searched(time.perf_counter() - started, alpha, fusion.value, 0, 0)
            return SearchResult([], store_passages=0, took_ms=_ms_since(started), alpha=alpha)
        limit = max(k * OVERSEARCH_FACTOR, MIN_LEG_LIMIT)
        if profile.native_hybrid:
            ranked, keyword_chunks = self._native_ranking(
                text, limit, alpha, fusion, query, profile
            )
        else:
            ranked, keyword_chunks = self._fused_ranking(text, limit, alpha, fusion, query, profile)
        query_identifiers = identifiers(text)
        pins = (
            exact_match_pins(query_identifiers, keyword_chunks, k)
            if profile.pin_exact_identifiers
            else {}
        )
        if self.reranker is not None:
            ranked = rerank(self.reranker, text, ranked)
        selected = select_passages(
            ranked,
            k,
            max_per_source=max_per_source,
            pinned=pins,
            drop_near_duplicates=profile.drop_near_duplicates,
        )
        passages = [
            replace(p, exact_matches=matched_identifiers(p.chunk.text, query_identifiers))
            for p in selected
        ]
        instruments.searched(
            time.perf_counter() - started, alpha, fusion.value, len(passages), total
        )
        return SearchResult(passages, store_passages=total, took_ms=_ms_since(started), alpha=alpha)

    def _fused_ranking(
        self,
        text: str,
        limit: int,
        alpha: float,
        fusion: FusionMethod,
        query: SearchQuery,
        profile: RankingProfile,
    ) -> tuple[list[ScoredPassage], list[Chunk]]:
        """Both legs from the store, fused here; also the keyword leg's chunks (for the pins)."""
        # Like Weaviate, a leg whose weight is zero is not run at all.
        keyword_hits = (
            instruments.timed_leg(
                instruments.KEYWORD_LEG,
                lambda: self.store.keyword_search(
                    text, limit, query.filter, analyzer=profile.analyzer
                ),
            )
            if alpha < 1.0
            else []
        )
        vector_hits = (
            instruments.timed_leg(
                instruments.VECTOR_LEG,
                lambda: self.store.vector_search(
                    self.embedder.encode_query(text), limit, query.filter
                ),
            )
            if alpha > 0.0
            else []
        )
        ranked = _fuse(keyword_hits, vector_hits, alpha, fusion)
        return ranked, [chunk for chunk, _ in keyword_hits]

    def _native_ranking(
        self,
        text: str,
        limit: int,
        alpha: float,
        fusion: FusionMethod,
        query: SearchQuery,
        profile: RankingProfile,
    ) -> tuple[list[ScoredPassage], list[Chunk]]:
        """The store's own hybrid query (Weaviate fuses); its hits also stand in for the pins'
        keyword leg, which it does not return separately (per-leg scores stay 0)."""
        store = self.store
        if not isinstance(store, NativeHybridStore):
            raise Misconfigured(
                "native hybrid ranking needs a store with a native hybrid query; set "
                "RAILDEBUG_RETRIEVER_STORE_BACKEND=weaviate"
            )
        hits = instruments.timed_leg(
            instruments.HYBRID_LEG,
            lambda: store.native_hybrid_search(
                text,
                self.embedder.encode_query(text),
                limit,
                alpha,
                fusion,
                query.filter,
                analyzer=profile.analyzer,
            ),
        )
        ranked = [ScoredPassage(chunk, 0.0, 0.0, score) for chunk, score in hits]
        return ranked, [chunk for chunk, _ in hits]

    def _validate(self, query: SearchQuery) -> tuple[str, FusionMethod, int]:
        text = query.text.strip() if isinstance(query.text, str) else ""
        if not text:
            raise InvalidRequest(
                "query text is empty; describe the problem, e.g. an error code, a log line or "
                "a configuration key"
            )
        if len(text) > MAX_QUERY_CHARS:
            raise InvalidRequest(
                f"query text has {len(text)} characters, more than {MAX_QUERY_CHARS}; quote "
                "only the relevant part of the log or stack trace"
            )
        if isinstance(query.k, bool) or not isinstance(query.k, int) or not 1 <= query.k <= MAX_K:
            raise InvalidRequest(f"k must be an integer from 1 to {MAX_K}, got {query.k!r}")
        alpha = query.alpha
        if (
            isinstance(alpha, bool)
            or not isinstance(alpha, int | float)
            or not math.isfinite(alpha)
            or not 0.0 <= alpha <= 1.0
        ):
            raise InvalidRequest(
                f"alpha must be within [0, 1] (0: keyword only, 1: vector only), got {alpha!r}"
            )
        try:
            fusion = FusionMethod(query.fusion)
        except ValueError:
            known = ", ".join(method.value for method in FusionMethod)
            raise InvalidRequest(
                f"unknown fusion method {query.fusion!r}; use one of: {known}"
            ) from None
        cap = self.max_per_source if query.max_per_source is None else query.max_per_source
        if isinstance(cap, bool) or not isinstance(cap, int) or not 0 <= cap <= MAX_K:
            raise InvalidRequest(
                f"max_per_source must be an integer from 0 (no cap) to {MAX_K}, got {cap!r}"
            )
        _check_filter(query.filter)
        return text, fusion, cap

    # --- info ---------------------------------------------------------------------------------

    def stats(self) -> StoreStats:
        """What is stored, and with which embedding model (for the Stats RPC)."""
        return self.store.stats()

    @staticmethod
    def filterable_metadata() -> tuple[str, ...]:
        """Metadata keys a search filter may use (stored as columns)."""
        return FILTERABLE_METADATA


def effective_alpha(text: str, alpha: float, profile: RankingProfile) -> float:
    """The vector weight for this query: a hybrid alpha shrinks with the identifier share.

    "E73-B" alone gives the embedding model nothing to work with, so a hybrid request
    becomes keyword-only; "E73-B when P12 fails to lock" keeps most of the vector weight.
    Explicit single-leg requests (alpha 0 or 1) are never changed.
    """
    if not profile.identifier_weighting or alpha in (0.0, 1.0):
        return alpha
    return alpha * (1.0 - identifier_share(text))


def _check_document(doc: SourceDocument) -> None:
    """Bounds of what is stored with every chunk (raildebug.limits; README, Security)."""
    check_label("source", doc.source, MAX_SOURCE_CHARS)
    check_label("kind", doc.kind, MAX_LABEL_CHARS)
    check_label("language", doc.language, MAX_LABEL_CHARS)
    check_text("title", doc.title, MAX_TITLE_CHARS)
    check_metadata("metadata", doc.metadata)
    if "\0" in doc.content:
        raise InvalidRequest("content contains NUL characters; ingest text, not binary files")


def _check_filter(passage_filter: PassageFilter) -> None:
    check_passage_filter(passage_filter)
    unknown_kinds = sorted({kind for kind in passage_filter.kinds if kind} - set(KINDS))
    if unknown_kinds:
        raise InvalidRequest(
            f"unknown kind(s) {', '.join(map(clip, unknown_kinds))} in filter; "
            f"kinds are: {', '.join(KINDS)}"
        )
    check_filter(passage_filter)


def _fuse(
    keyword_hits: list[tuple[Chunk, float]],
    vector_hits: list[tuple[Chunk, float]],
    alpha: float,
    fusion: FusionMethod,
) -> list[ScoredPassage]:
    """Every candidate of either leg, best fused first, with both legs' raw scores."""
    chunks: dict[str, Chunk] = {}
    keyword_scores: dict[str, float] = {}
    vector_scores: dict[str, float] = {}
    for hits, scores in ((keyword_hits, keyword_scores), (vector_hits, vector_scores)):
        for chunk, score in hits:
            chunks.setdefault(chunk.id, chunk)
            scores.setdefault(chunk.id, score)
    keyword = [(chunk.id, score) for chunk, score in keyword_hits]
    vector = [(chunk.id, score) for chunk, score in vector_hits]
    if fusion is FusionMethod.RANKED:
        fused = ranked_fusion(keyword, vector, alpha)
    else:
        fused = relative_score_fusion(keyword, vector, alpha)
    return [
        ScoredPassage(
            chunk=chunks[chunk_id],
            keyword_score=keyword_scores.get(chunk_id, 0.0),
            vector_score=vector_scores.get(chunk_id, 0.0),
            fused_score=score,
        )
        for chunk_id, score in fused
    ]


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
