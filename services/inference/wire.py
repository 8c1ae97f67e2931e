"""Conversions between inference Protobuf messages and core types (transport side only)."""

from __future__ import annotations

from raildebug.v1 import common_pb2, inference_pb2
from services.inference.models import (
    ChatTurn,
    FinishReason,
    GenerationOutcome,
    GenerationRequest,
    ModelInfo,
    Sampling,
)

_FINISH_TO_WIRE = {
    FinishReason.LENGTH: inference_pb2.FINISH_REASON_LENGTH,
    FinishReason.STOP: inference_pb2.FINISH_REASON_STOP,
    FinishReason.EOS: inference_pb2.FINISH_REASON_EOS,
    FinishReason.CANCELLED: inference_pb2.FINISH_REASON_CANCELLED,
    FinishReason.ERROR: inference_pb2.FINISH_REASON_ERROR,
}
FINISH_FROM_WIRE = {wire: reason for reason, wire in _FINISH_TO_WIRE.items()}


def request_from_wire(message: inference_pb2.GenerateRequest) -> GenerationRequest:
    s = message.sampling
    sampling = Sampling(
        temperature=s.temperature if s.HasField("temperature") else None,
        top_p=s.top_p if s.HasField("top_p") else None,
        top_k=s.top_k if s.HasField("top_k") else None,
        repeat_penalty=s.repeat_penalty if s.HasField("repeat_penalty") else None,
        seed=s.seed if s.HasField("seed") else None,
    )
    chat = None
    if message.WhichOneof("input") == "chat":
        chat = tuple(ChatTurn(m.role, m.content) for m in message.chat.messages)
    return GenerationRequest(
        prompt=message.prompt if message.WhichOneof("input") == "prompt" else None,
        chat=chat,
        max_tokens=message.max_tokens,
        sampling=sampling,
        stop=tuple(message.stop),
        request_id=message.request_id,
        grammar=message.grammar,
        json_schema=message.json_schema,
    )


def outcome_to_wire(outcome: GenerationOutcome) -> inference_pb2.GenerationResult:
    return inference_pb2.GenerationResult(
        finish_reason=_FINISH_TO_WIRE[outcome.finish_reason],
        usage=common_pb2.TokenUsage(
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            cached_prompt_tokens=outcome.cached_prompt_tokens,
        ),
        timings=common_pb2.GenerationTimings(
            queue_ms=outcome.queue_ms,
            time_to_first_token_ms=outcome.time_to_first_token_ms,
            prefill_ms=outcome.prefill_ms,
            decode_ms=outcome.decode_ms,
            total_ms=outcome.total_ms,
        ),
        model=outcome.model,
        error=outcome.error,
    )


def info_to_wire(info: ModelInfo) -> inference_pb2.InfoResponse:
    return inference_pb2.InfoResponse(
        model=info.model,
        architecture=info.architecture,
        quantization=info.quantization,
        context_length=info.context_length,
        trained_context_length=info.trained_context_length,
        slots=info.slots,
        busy_slots=info.busy_slots,
        queue_depth=info.queue_depth,
        n_gpu_layers_requested=info.n_gpu_layers_requested,
        n_gpu_layers_offloaded=info.n_gpu_layers_offloaded,
        n_layers=info.n_layers,
        n_threads=info.n_threads,
        model_path=info.model_path,
        backend=info.backend,
    )
