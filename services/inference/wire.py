"""Conversions between inference Protobuf messages and core types (transport side only)."""

from __future__ import annotations

from raildebug.v1 import inference_pb2
from services.inference.models import ChatTurn, GenerationRequest, ModelInfo, Sampling


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
