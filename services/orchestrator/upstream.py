"""gRPC clients of the retriever and inference services, shaped as the core's ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc

from raildebug.grpc_runtime.channels import open_channel
from raildebug.grpc_runtime.errors import error_from_rpc
from raildebug.v1 import inference_pb2, inference_pb2_grpc, retriever_pb2, retriever_pb2_grpc
from services.inference.wire import FINISH_FROM_WIRE
from services.orchestrator.models import ContextPassage, GenerationStats
from services.retriever.models import PassageFilter
from services.retriever.wire import filter_to_wire


class RetrieverClient:
    """PassageSource over the Retriever service."""

    def __init__(self, address: str) -> None:
        self._channel = open_channel(address)
        self._stub = retriever_pb2_grpc.RetrieverStub(self._channel)

    def search(
        self, query: str, k: int, passage_filter: PassageFilter, timeout_s: float
    ) -> list[ContextPassage]:
        request = retriever_pb2.SearchRequest(
            query=query, k=k, filter=filter_to_wire(passage_filter)
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

    def __init__(self, address: str) -> None:
        self._channel = open_channel(address)
        self._stub = inference_pb2_grpc.InferenceStub(self._channel)

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
