"""Conversions between retriever Protobuf messages and core types (transport side only)."""

from __future__ import annotations

from raildebug.contracts import filter_from_wire
from raildebug.errors import InvalidRequest
from raildebug.v1 import retriever_pb2
from services.retriever.models import (
    DEFAULT_ALPHA,
    DEFAULT_K,
    FusionMethod,
    IngestReport,
    ScoredPassage,
    SearchQuery,
    SearchResult,
    SourceDocument,
    StoreStats,
)

_FUSION_FROM_WIRE = {
    retriever_pb2.FUSION_TYPE_UNSPECIFIED: FusionMethod.RELATIVE_SCORE,
    retriever_pb2.FUSION_TYPE_RELATIVE_SCORE: FusionMethod.RELATIVE_SCORE,
    retriever_pb2.FUSION_TYPE_RANKED: FusionMethod.RANKED,
}


def fusion_from_wire(value: int) -> FusionMethod:
    """An enum value this server does not know is refused, never read as the default."""
    fusion = _FUSION_FROM_WIRE.get(retriever_pb2.FusionType.ValueType(value))
    if fusion is None:
        known = ", ".join(
            f"{retriever_pb2.FusionType.Name(wire)} ({int(wire)})" for wire in _FUSION_FROM_WIRE
        )
        raise InvalidRequest(f"unknown fusion value {value}; use one of: {known}")
    return fusion


def query_from_wire(request: retriever_pb2.SearchRequest) -> SearchQuery:
    return SearchQuery(
        text=request.query,
        k=request.k or DEFAULT_K,
        alpha=request.alpha if request.HasField("alpha") else DEFAULT_ALPHA,
        fusion=fusion_from_wire(request.fusion),
        filter=filter_from_wire(request.filter),
        max_per_source=request.max_per_source if request.HasField("max_per_source") else None,
    )


def passage_to_wire(hit: ScoredPassage) -> retriever_pb2.Passage:
    chunk = hit.chunk
    return retriever_pb2.Passage(
        id=chunk.id,
        text=chunk.text,
        source=chunk.source,
        line_start=chunk.line_start,
        line_end=chunk.line_end,
        kind=chunk.kind,
        language=chunk.language,
        title=chunk.title,
        keyword_score=hit.keyword_score,
        vector_score=hit.vector_score,
        fused_score=hit.fused_score,
        metadata=chunk.metadata,
        exact_matches=list(hit.exact_matches),
        pinned=hit.pinned,
        rerank_score=hit.rerank_score,
    )


def search_result_to_wire(result: SearchResult) -> retriever_pb2.SearchResponse:
    return retriever_pb2.SearchResponse(
        passages=[passage_to_wire(hit) for hit in result.passages],
        store_passages=result.store_passages,
        took_ms=result.took_ms,
        alpha=result.alpha,
    )


def document_from_wire(message: retriever_pb2.IngestDocument) -> SourceDocument:
    return SourceDocument(
        source=message.source,
        content=message.content,
        kind=message.kind,
        language=message.language,
        metadata=dict(message.metadata),
        title=message.title,
    )


def document_to_wire(document: SourceDocument) -> retriever_pb2.IngestDocument:
    return retriever_pb2.IngestDocument(
        source=document.source,
        content=document.content,
        kind=document.kind,
        language=document.language,
        metadata=document.metadata,
        title=document.title,
    )


def report_to_wire(report: IngestReport) -> retriever_pb2.IngestSummary:
    return retriever_pb2.IngestSummary(
        documents_received=report.documents_received,
        documents_written=report.documents_written,
        documents_unchanged=report.documents_unchanged,
        chunks_written=report.chunks_written,
        errors=[
            retriever_pb2.IngestError(source=e.source, message=e.message) for e in report.errors
        ],
        duplicates=[
            retriever_pb2.DuplicateDocument(source=d.source, stored_as=d.stored_as)
            for d in report.duplicates
        ],
    )


def stats_to_wire(stats: StoreStats) -> retriever_pb2.StatsResponse:
    return retriever_pb2.StatsResponse(
        passages=stats.passages,
        sources=stats.sources,
        embedding_model=stats.embedding_model,
        embedding_dim=stats.embedding_dim,
        backend=stats.backend,
        passages_by_kind=stats.passages_by_kind,
    )
