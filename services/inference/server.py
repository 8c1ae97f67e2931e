"""gRPC transport of the inference service (thin: conversions and lifecycle only)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

import grpc

from raildebug.contracts import outcome_to_wire
from raildebug.domain import GenerationOutcome
from raildebug.grpc_runtime.context import absolute_deadline, cancellation_flag
from raildebug.grpc_runtime.server import CoreHolder, RailDebugServer
from raildebug.settings import InferenceSettings
from raildebug.v1 import inference_pb2, inference_pb2_grpc
from services.inference.backend import GenerationBackend
from services.inference.engine import LlamaEngine
from services.inference.model_files import check_lora_path, resolve_model_path
from services.inference.openai_backend import OpenAIBackend
from services.inference.validation import validate_count
from services.inference.wire import info_to_wire, request_from_wire

SERVICE_NAME = inference_pb2.DESCRIPTOR.services_by_name["Inference"].full_name

BackendT = TypeVar("BackendT", bound=GenerationBackend)


class InferenceServicer(inference_pb2_grpc.InferenceServicer, Generic[BackendT]):
    def __init__(self, engine: CoreHolder[BackendT]) -> None:
        self._engine = engine

    def Generate(
        self, request: inference_pb2.GenerateRequest, context: grpc.ServicerContext
    ) -> Iterator[inference_pb2.GenerateResponse]:
        events = self._engine.get().generate(
            request_from_wire(request),
            is_cancelled=cancellation_flag(context),
            deadline=absolute_deadline(context, default_s=None),
        )
        for event in events:
            if isinstance(event, GenerationOutcome):
                yield inference_pb2.GenerateResponse(result=outcome_to_wire(event))
            else:
                yield inference_pb2.GenerateResponse(delta=event.text)

    def Info(
        self, request: inference_pb2.InfoRequest, context: grpc.ServicerContext
    ) -> inference_pb2.InfoResponse:
        return info_to_wire(self._engine.get().info())

    def CountTokens(
        self, request: inference_pb2.CountTokensRequest, context: grpc.ServicerContext
    ) -> inference_pb2.CountTokensResponse:
        texts = list(request.texts)
        validate_count(texts)
        counted = self._engine.get().token_counts(texts)
        return inference_pb2.CountTokensResponse(
            counts=list(counted.counts), estimated=counted.estimated
        )


def build_server(settings: InferenceSettings) -> RailDebugServer:
    server = RailDebugServer(settings, [SERVICE_NAME])
    backend: CoreHolder[GenerationBackend] = CoreHolder(f"inference backend {settings.backend}")
    inference_pb2_grpc.add_InferenceServicer_to_server(
        InferenceServicer(backend), server.grpc_server
    )
    server.add_core(backend, lambda: load_backend(settings))
    return server


def load_backend(settings: InferenceSettings) -> GenerationBackend:
    if settings.backend == "openai":
        return OpenAIBackend(
            settings.openai,
            slots=settings.slots,
            max_queue=settings.max_queue,
            default_max_tokens=settings.default_max_tokens,
        )
    path = resolve_model_path(settings.model_path, settings.model_cache_dir, settings.model)
    return LlamaEngine(
        path,
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
        n_batch=settings.n_batch,
        n_gpu_layers=settings.n_gpu_layers,
        slots=settings.slots,
        max_queue=settings.max_queue,
        default_max_tokens=settings.default_max_tokens,
        lora_path=check_lora_path(settings.lora_path),
        lora_scale=settings.lora_scale,
        served_name="" if settings.model_path is not None else settings.model,
        draft_max=settings.draft_max,
        draft_ngram_max=settings.draft_ngram_max,
        draft_step_tokens=settings.draft_step_tokens,
        prefill_chunk=settings.prefill_chunk,
    )
