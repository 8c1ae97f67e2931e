"""Conversions between orchestrator Protobuf messages and core types (transport side only)."""

from __future__ import annotations

from raildebug.contracts import filter_from_wire
from raildebug.v1 import common_pb2, orchestrator_pb2
from services.orchestrator.models import (
    AnswerDelta,
    ContextEvent,
    DebugEvent,
    DebugQuestion,
    DebugSummary,
    FeedbackEntry,
)


def question_from_wire(request: orchestrator_pb2.DebugRequest) -> DebugQuestion:
    return DebugQuestion(
        question=request.question,
        code_snippet=request.code_snippet,
        error_log=request.error_log,
        filter=filter_from_wire(request.filter),
        k=request.k,
        max_tokens=request.max_tokens,
        client_id=request.client_id,
        session_id=request.session_id,
    )


def feedback_from_wire(request: orchestrator_pb2.FeedbackRequest) -> FeedbackEntry:
    return FeedbackEntry(
        request_id=request.request_id,
        score=request.score,
        comment=request.comment,
        client_id=request.client_id,
    )


def event_to_wire(event: DebugEvent) -> orchestrator_pb2.DebugEvent:
    if isinstance(event, AnswerDelta):
        return orchestrator_pb2.DebugEvent(delta=event.text)
    if isinstance(event, ContextEvent):
        return orchestrator_pb2.DebugEvent(context=_context_to_wire(event))
    return orchestrator_pb2.DebugEvent(summary=_summary_to_wire(event))


def _context_to_wire(event: ContextEvent) -> orchestrator_pb2.RetrievedContext:
    return orchestrator_pb2.RetrievedContext(
        passages=[
            orchestrator_pb2.ContextPassage(
                id=p.id,
                source=p.source,
                line_start=p.line_start,
                line_end=p.line_end,
                title=p.title,
                kind=p.kind,
                score=p.score,
                label=p.label,
            )
            for p in event.passages
        ],
        retrieval_ms=event.retrieval_ms,
    )


def _summary_to_wire(summary: DebugSummary) -> orchestrator_pb2.DebugSummary:
    g = summary.generation
    return orchestrator_pb2.DebugSummary(
        request_id=summary.request_id,
        usage=common_pb2.TokenUsage(
            prompt_tokens=g.prompt_tokens,
            completion_tokens=g.completion_tokens,
            cached_prompt_tokens=g.cached_prompt_tokens,
        ),
        generation_timings=common_pb2.GenerationTimings(
            queue_ms=g.queue_ms,
            time_to_first_token_ms=g.time_to_first_token_ms,
            prefill_ms=g.prefill_ms,
            decode_ms=g.decode_ms,
            total_ms=g.total_ms,
        ),
        latency_ms=summary.latency_ms,
        time_to_first_token_ms=summary.time_to_first_token_ms,
        model=g.model,
        prompt_version=summary.prompt_version,
        cited_passage_ids=summary.cited_passage_ids,
        degraded=summary.degraded,
        degraded_reason=summary.degraded_reason,
        finish_reason=g.finish_reason,
        prompt_variant=summary.prompt_variant,
        cache_hit=summary.cache_hit,
        estimated_cost_usd=summary.estimated_cost_usd,
    )
