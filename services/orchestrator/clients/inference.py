"""The one client of the Inference service (raildebug.v1.Inference).

The prompted analyzer and the DSPy program's LM both generate through `InferenceClient`, so
deadlines, cancellation, error mapping and the model name are handled in one place.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field

import grpc
from opentelemetry.trace import TracerProvider

from raildebug.contracts import outcome_from_wire
from raildebug.domain import GenerationOutcome
from raildebug.grpc_runtime.channels import open_channel
from raildebug.grpc_runtime.security import ChannelSecurity
from raildebug.v1 import inference_pb2, inference_pb2_grpc
from services.orchestrator.clients.errors import upstream_error


@dataclass(frozen=True)
class SamplingChoice:
    """Sampling the caller sets; None leaves the service's default."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None


@dataclass(frozen=True)
class Generation:
    """One Generate call: a raw `prompt`, or `chat` turns as (role, content) pairs."""

    prompt: str = ""
    chat: Sequence[tuple[str, str]] = ()
    max_tokens: int = 0
    stop: tuple[str, ...] = ()
    request_id: str = ""
    json_schema: str = ""
    grammar: str = ""
    sampling: SamplingChoice = field(default_factory=SamplingChoice)


def _to_wire(generation: Generation) -> inference_pb2.GenerateRequest:
    sampling = inference_pb2.SamplingParams()
    choice = generation.sampling
    if choice.temperature is not None:
        sampling.temperature = choice.temperature
    if choice.top_p is not None:
        sampling.top_p = choice.top_p
    if choice.top_k is not None:
        sampling.top_k = choice.top_k
    if choice.seed is not None:
        sampling.seed = choice.seed
    request = inference_pb2.GenerateRequest(
        max_tokens=generation.max_tokens,
        stop=list(generation.stop),
        request_id=generation.request_id,
        json_schema=generation.json_schema,
        grammar=generation.grammar,
        sampling=sampling,
    )
    if generation.chat:
        request.chat.CopyFrom(
            inference_pb2.ChatMessages(
                messages=[
                    inference_pb2.ChatMessage(role=role, content=content)
                    for role, content in generation.chat
                ]
            )
        )
    else:
        request.prompt = generation.prompt
    return request


class InferenceClient:
    """Streams text deltas, then exactly one GenerationOutcome, from the Inference service."""

    MODEL_NAME_TTL_S = 60.0  # a restarted inference service may serve another model

    def __init__(
        self,
        address: str,
        security: ChannelSecurity | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.address = address
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
            raise upstream_error(error, "inference") from error
        with self._lock:
            self._model_name = (time.monotonic(), info.model)
        return str(info.model)

    def generate(
        self,
        generation: Generation,
        *,
        timeout_s: float,
        is_cancelled: Callable[[], bool],
    ) -> Generator[str | GenerationOutcome, None, None]:
        """Stops reading (and cancels the call) as soon as `is_cancelled()` turns true; then the
        stream ends without an outcome. Closing the generator early cancels the call too."""
        call = self._stub.Generate(_to_wire(generation), timeout=max(timeout_s, 0.001))
        try:
            for message in call:
                if is_cancelled():
                    call.cancel()
                    return
                if message.WhichOneof("event") == "delta":
                    yield message.delta
                else:
                    yield outcome_from_wire(message.result)
        except grpc.RpcError as error:
            raise upstream_error(error, "inference") from error
        finally:
            call.cancel()  # no-op when complete; frees the model when our caller went away

    def count(self, texts: Sequence[str], timeout_s: float) -> list[int]:
        """Tokens of each text in the served model (CountTokens), for the prompt's budget."""
        try:
            reply = self._stub.CountTokens(
                inference_pb2.CountTokensRequest(texts=list(texts)),
                timeout=max(min(timeout_s, 5.0), 0.001),
            )
        except grpc.RpcError as error:
            raise upstream_error(error, "inference") from error
        return list(reply.counts)

    def close(self) -> None:
        self._channel.close()
