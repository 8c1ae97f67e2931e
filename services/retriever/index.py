"""The retriever's facade: ingest documents, run hybrid searches, report what is stored.

The gRPC layer calls only this class. It validates requests (raising InvalidRequest with a
message the caller can act on), keeps one bad file from failing a whole ingest, and combines
BM25 and vector hits with Weaviate-compatible fusion (see services.retriever.fusion).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from raildebug.errors import InvalidRequest
from raildebug.telemetry import get_logger
from services.retriever.chunking import CHUNKER_VERSION, chunk_document
from services.retriever.embedding import Embedder
from services.retriever.fusion import ranked_fusion, relative_score_fusion
from services.retriever.models import (
    FILTERABLE_METADATA,
    MAX_K,
    Chunk,
    FusionMethod,
    IngestFailure,
    IngestReport,
    ScoredPassage,
    SearchQuery,
    SearchResult,
    SourceDocument,
    StoreStats,
)
from services.retriever.sources import KINDS, resolve_kind_language
from services.retriever.store import LanceChunkStore, build_where

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


class RetrievalIndex:
    """Hybrid (BM25 + vector) retrieval over ingested docs and code, stored in LanceDB."""

    def __init__(
        self,
        store_dir: Path,
        embedder: Embedder | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.embedder = embedder if embedder is not None else Embedder()
        self.batch_size = batch_size
        self.store = LanceChunkStore(
            Path(store_dir),
            self.embedder.dimension,
            embedding_model=self.embedder.model_name,
        )
        self._write_lock = threading.Lock()  # one ingest/delete at a time; searches never wait

    # --- ingest -------------------------------------------------------------------------------

    def fingerprint(self, doc: SourceDocument) -> str:
        """Hash of everything that shapes a document's rows, to skip unchanged re-ingests.

        Besides the content it covers kind, language, metadata, the chunker version and the
        embedding model, so changing any of them rewrites the document.
        """
        kind, language = resolve_kind_language(doc)
        header = json.dumps(
            {
                "chunker": CHUNKER_VERSION,
                "model": self.embedder.model_name,
                "kind": kind,
                "language": language,
                "metadata": dict(sorted(doc.metadata.items())),
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
            try:
                for doc in documents:
                    report.documents_received += 1
                    source = getattr(doc, "source", "") or ""
                    try:
                        prepared = self._prepare(doc, stored_hashes)
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
            chunks=report.chunks_written,
            errors=len(report.errors),
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
            raise InvalidRequest(f"metadata keys and values must be strings: {bad_metadata!r}")
        fingerprint = self.fingerprint(doc)
        if stored_hashes.get(doc.source) == fingerprint:
            return None
        return _Prepared(doc.source, chunk_document(doc), fingerprint)

    def _flush(
        self, pending: list[_Prepared], report: IngestReport, stored_hashes: dict[str, str]
    ) -> bool:
        """Embed the pending documents' chunks in batches and write each document."""
        texts = [embedding_text(chunk) for doc in pending for chunk in doc.chunks]
        try:
            vectors = self.embedder.encode(texts, batch_size=self.batch_size)
        except Exception:  # isolate the document that breaks the batch
            log.warning("batch embedding failed; retrying per document", docs=len(pending))
            vectors = None
        wrote = False
        offset = 0
        for doc in pending:
            n = len(doc.chunks)
            try:
                doc_vectors = (
                    vectors[offset : offset + n]
                    if vectors is not None
                    else self.embedder.encode([embedding_text(c) for c in doc.chunks])
                )
                self.store.replace_source(
                    doc.source, doc.chunks, doc_vectors, doc.fingerprint, refresh=False
                )
            except Exception as exc:  # reported per document
                self._fail(report, doc.source, exc)
                stored_hashes.pop(doc.source, None)  # unknown now: a retry must rewrite it
            else:
                wrote = True
                report.documents_written += 1
                report.chunks_written += n
            offset += n
        return wrote

    @staticmethod
    def _fail(report: IngestReport, source: str, exc: Exception) -> None:
        message = str(exc) or type(exc).__name__
        if not isinstance(exc, InvalidRequest):
            log.warning("document failed to ingest", source=source, error=message)
        report.errors.append(IngestFailure(source=source, message=message))

    def delete_source(self, source: str) -> int:
        """Remove every chunk of `source`; returns how many were removed (0 if unknown)."""
        if not source.strip():
            raise InvalidRequest("source is empty; pass the path used at ingest")
        with self._write_lock:
            return self.store.delete_source(source)

    # --- search -------------------------------------------------------------------------------

    def search(self, query: SearchQuery) -> SearchResult:
        """Top-k passages by fused BM25 + vector score, each with both legs' raw scores."""
        started = time.perf_counter()
        text, fusion, where = self._validate(query)
        k, alpha = query.k, float(query.alpha)
        total = self.store.count()
        if total == 0:
            return SearchResult(passages=[], store_passages=0, took_ms=_ms_since(started))
        limit = max(k * OVERSEARCH_FACTOR, MIN_LEG_LIMIT)
        # Like Weaviate, a leg whose weight is zero is not run at all.
        keyword_hits = self.store.keyword_search(text, limit, where) if alpha < 1.0 else []
        vector_hits = (
            self.store.vector_search(self.embedder.encode_query(text), limit, where)
            if alpha > 0.0
            else []
        )
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
        passages = [
            ScoredPassage(
                chunk=chunks[chunk_id],
                keyword_score=keyword_scores.get(chunk_id, 0.0),
                vector_score=vector_scores.get(chunk_id, 0.0),
                fused_score=score,
            )
            for chunk_id, score in fused[:k]
        ]
        return SearchResult(passages=passages, store_passages=total, took_ms=_ms_since(started))

    def _validate(self, query: SearchQuery) -> tuple[str, FusionMethod, str | None]:
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
        unknown_kinds = sorted({kind for kind in query.filter.kinds if kind} - set(KINDS))
        if unknown_kinds:
            raise InvalidRequest(
                f"unknown kind(s) {', '.join(map(repr, unknown_kinds))} in filter; "
                f"kinds are: {', '.join(KINDS)}"
            )
        return text, fusion, build_where(query.filter)

    # --- info ---------------------------------------------------------------------------------

    def stats(self) -> StoreStats:
        """What is stored, and with which embedding model (for the Stats RPC)."""
        return self.store.stats()

    @staticmethod
    def filterable_metadata() -> tuple[str, ...]:
        """Metadata keys a search filter may use (stored as columns)."""
        return FILTERABLE_METADATA


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
