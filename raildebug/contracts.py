"""Conversions between the shared domain types and the generated `raildebug.v1` messages.

Every service converts passage filters, finish reasons, usage and timings here, so the wire
meaning of each field is written once.
"""

from __future__ import annotations

from raildebug.domain import FinishReason, GenerationOutcome, PassageFilter
from raildebug.v1 import common_pb2, inference_pb2

# DEADLINE has no wire value on purpose: a stream past its deadline ends with a status.
FINISH_TO_WIRE: dict[FinishReason, inference_pb2.FinishReason.ValueType] = {
    FinishReason.LENGTH: inference_pb2.FINISH_REASON_LENGTH,
    FinishReason.STOP: inference_pb2.FINISH_REASON_STOP,
    FinishReason.EOS: inference_pb2.FINISH_REASON_EOS,
    FinishReason.CANCELLED: inference_pb2.FINISH_REASON_CANCELLED,
    FinishReason.ERROR: inference_pb2.FINISH_REASON_ERROR,
}
_FINISH_FROM_WIRE: dict[int, FinishReason] = {
    int(wire): reason for reason, wire in FINISH_TO_WIRE.items()
}


def finish_from_wire(value: int) -> FinishReason:
    """An unknown or unspecified wire value is an error: nothing says the text is whole."""
    return _FINISH_FROM_WIRE.get(value, FinishReason.ERROR)


def filter_from_wire(message: common_pb2.PassageFilter) -> PassageFilter:
    return PassageFilter(
        kinds=tuple(message.kinds),
        languages=tuple(message.languages),
        source_prefix=message.source_prefix,
        metadata=dict(message.metadata),
    )


def filter_to_wire(passage_filter: PassageFilter) -> common_pb2.PassageFilter:
    return common_pb2.PassageFilter(
        kinds=list(passage_filter.kinds),
        languages=list(passage_filter.languages),
        source_prefix=passage_filter.source_prefix,
        metadata=passage_filter.metadata,
    )


def usage_to_wire(outcome: GenerationOutcome) -> common_pb2.TokenUsage:
    return common_pb2.TokenUsage(
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        cached_prompt_tokens=outcome.cached_prompt_tokens,
        drafted_tokens=outcome.drafted_tokens,
        accepted_draft_tokens=outcome.accepted_draft_tokens,
    )


def timings_to_wire(outcome: GenerationOutcome) -> common_pb2.GenerationTimings:
    return common_pb2.GenerationTimings(
        queue_ms=outcome.queue_ms,
        time_to_first_token_ms=outcome.time_to_first_token_ms,
        prefill_ms=outcome.prefill_ms,
        decode_ms=outcome.decode_ms,
        total_ms=outcome.total_ms,
    )


def outcome_to_wire(outcome: GenerationOutcome) -> inference_pb2.GenerationResult:
    return inference_pb2.GenerationResult(
        finish_reason=FINISH_TO_WIRE[outcome.finish_reason],
        usage=usage_to_wire(outcome),
        timings=timings_to_wire(outcome),
        model=outcome.model,
        error=outcome.error,
    )


def outcome_from_wire(result: inference_pb2.GenerationResult) -> GenerationOutcome:
    usage, timings = result.usage, result.timings
    return GenerationOutcome(
        finish_reason=finish_from_wire(result.finish_reason),
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_prompt_tokens=usage.cached_prompt_tokens,
        drafted_tokens=usage.drafted_tokens,
        accepted_draft_tokens=usage.accepted_draft_tokens,
        queue_ms=timings.queue_ms,
        time_to_first_token_ms=timings.time_to_first_token_ms,
        prefill_ms=timings.prefill_ms,
        decode_ms=timings.decode_ms,
        total_ms=timings.total_ms,
        model=result.model,
        error=result.error,
    )
