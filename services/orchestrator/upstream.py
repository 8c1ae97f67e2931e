"""gRPC clients of the retriever and inference services, shaped as the core's ports."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import grpc
from opentelemetry.trace import TracerProvider

from raildebug.grpc_runtime.channels import open_channel
from raildebug.grpc_runtime.errors import error_from_rpc
from raildebug.grpc_runtime.security import ChannelSecurity
from raildebug.v1 import inference_pb2, inference_pb2_grpc, retriever_pb2, retriever_pb2_grpc
from services.inference.wire import FINISH_FROM_WIRE
from services.orchestrator.models import ContextPassage, GenerationStats
from services.retriever.models import PassageFilter
from services.retriever.wire import filter_to_wire


class RetrieverClient:
    """PassageSource over the Retriever service."""

    def __init__(
        self,
        address: str,
        alpha: float = 0.5,
        security: ChannelSecurity | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._channel = open_channel(address, security or ChannelSecurity(), tracer_provider)
        self._stub = retriever_pb2_grpc.RetrieverStub(self._channel)
        self.alpha = alpha

    def search(
        self, query: str, k: int, passage_filter: PassageFilter, timeout_s: float
    ) -> list[ContextPassage]:
        request = retriever_pb2.SearchRequest(
            query=query, k=k, alpha=self.alpha, filter=filter_to_wire(passage_filter)
        )
        try:
            response = self._stub.Search(request, timeout=timeout_s)
        except grpc.RpcError as error:
            raise error_from_rpc(error, "retriever") from error
        return [
            ContextPassage(
                id=p.id,
                text=p.text,
                source=p.source,
                line_start=p.line_start,
                line_end=p.line_end,
                title=p.title,
                kind=p.kind,
                score=p.fused_score,
            )
            for p in response.passages
        ]

    def close(self) -> None:
        self._channel.close()


class InferenceClient:
    """AnswerGenerator over the Inference service's streaming Generate."""

    MODEL_NAME_TTL_S = 60.0  # a restarted inference service may serve another model

    def __init__(
        self,
        address: str,
        security: ChannelSecurity | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._channel = open_channel(address, security or ChannelSecurity(), tracer_provider)
        self._stub = inference_pb2_grpc.InferenceStub(self._channel)
        self._model_name: tuple[float, str] | None = None
        self._lock = threading.Lock()

    def model_name(self, timeout_s: float) -> str:
        """The served model's name (from Info), remembered for a minute."""
        with self._lock:
            known = self._model_name
        if known is not None and time.monotonic() - known[0] < self.MODEL_NAME_TTL_S:
            return known[1]
        try:
            info = self._stub.Info(inference_pb2.InfoRequest(), timeout=min(timeout_s, 5.0))
        except grpc.RpcError as error:
            raise error_from_rpc(error, "inference") from error
        with self._lock:
            self._model_name = (time.monotonic(), info.model)
        return str(info.model)

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int,
        stop: tuple[str, ...],
        timeout_s: float,
        request_id: str,
        is_cancelled: Callable[[], bool],
    ) -> Iterator[str | GenerationStats]:
        request = inference_pb2.GenerateRequest(
            prompt=prompt, max_tokens=max_tokens, stop=list(stop), request_id=request_id
        )
        call = self._stub.Generate(request, timeout=timeout_s)
        try:
            for message in call:
                if is_cancelled():
                    call.cancel()
                    return
                if message.WhichOneof("event") == "delta":
                    yield message.delta
                else:
                    yield _stats_from_wire(message.result)
        except grpc.RpcError as error:
            raise error_from_rpc(error, "inference") from error
        finally:
            call.cancel()  # no-op when complete; frees the model when our caller went away

    def close(self) -> None:
        self._channel.close()


def _stats_from_wire(result: inference_pb2.GenerationResult) -> GenerationStats:
    timings = result.timings
    return GenerationStats(
        finish_reason=(
            FINISH_FROM_WIRE[result.finish_reason].value
            if result.finish_reason in FINISH_FROM_WIRE
            else "error"
        ),
        prompt_tokens=result.usage.prompt_tokens,
        completion_tokens=result.usage.completion_tokens,
        cached_prompt_tokens=result.usage.cached_prompt_tokens,
        queue_ms=timings.queue_ms,
        time_to_first_token_ms=timings.time_to_first_token_ms,
        prefill_ms=timings.prefill_ms,
        decode_ms=timings.decode_ms,
        total_ms=timings.total_ms,
        model=result.model,
        error=result.error,
    )
