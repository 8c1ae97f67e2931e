"""A DSPy LM engine that generates through our Inference service's streaming Generate RPC.

DSPy 3.4 deprecates custom `BaseLM.forward` subclasses; the supported extension point is an
engine with `complete(Request) -> Response` and `stream(Request)` handed to `dspy.LM(engine=...)`.
DSPy keeps owning adapters, history and streaming listeners; this engine only maps one canonical
request onto one Generate call. Callers that need per-request control (deadline, cancellation,
the final timings) open a `RequestScope` under a request id and pass that id as LM metadata.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dspy
import grpc
from dspy import lm15

from raildebug.errors import DeadlineExceeded, InvalidRequest, Overloaded, RailDebugError
from raildebug.grpc_runtime.channels import open_channel
from raildebug.grpc_runtime.errors import error_from_rpc
from raildebug.grpc_runtime.security import ChannelSecurity
from raildebug.v1 import inference_pb2, inference_pb2_grpc

MODEL_PREFIX = "raildebug/"
# The packaged Gemma is a base model served as a "User:/Assistant:" transcript: stop at the end
# marker of DSPy's ChatAdapter or where the model starts to write the next turn itself.
STOP = ("[[ ## completed ## ]]", "\n\nUser:", "\n\nSystem:")
DEFAULT_TIMEOUT_S = 300.0
_ROLES = {"user": "user", "assistant": "assistant", "developer": "system", "system": "system"}
_FINISH = {
    inference_pb2.FINISH_REASON_LENGTH: "length",
    inference_pb2.FINISH_REASON_STOP: "stop",
    inference_pb2.FINISH_REASON_EOS: "stop",
}


@dataclass
class RequestScope:
    """Per-request control shared between the caller of a DSPy program and this engine."""

    deadline: float  # time.monotonic()
    is_cancelled: Callable[[], bool] = lambda: False
    results: list[inference_pb2.GenerationResult] = field(default_factory=list)


@dataclass
class EngineCounters:
    """What compilation costs: calls and tokens through this engine."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class InferenceEngine:
    """`dspy.LM(engine=...)` backend over raildebug.v1.Inference/Generate.

    Declares structured-output support: with DSPy's JSONAdapter the signature's JSON schema goes
    to the service, which enforces it as a grammar (slow on CPU; see program.rail_settings).
    """

    supports_response_schema = True
    supported_params = frozenset({"response_format", "seed", "stop", "top_p", "temperature"})

    def __init__(
        self,
        address: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        security: ChannelSecurity | None = None,
    ) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.counters = EngineCounters()
        self._channel = open_channel(address, security)
        self._stub = inference_pb2_grpc.InferenceStub(self._channel)
        self._scopes: dict[str, RequestScope] = {}
        self._lock = threading.Lock()

    def model_name(self, timeout_s: float = 10.0) -> str:
        """The served model's name, recorded with compiled programs."""
        try:
            info = self._stub.Info(inference_pb2.InfoRequest(), timeout=timeout_s)
        except grpc.RpcError as error:
            raise error_from_rpc(error, "inference") from error
        return f"{info.model} ({info.quantization})"

    def open_scope(self, request_id: str, scope: RequestScope) -> None:
        with self._lock:
            self._scopes[request_id] = scope

    def close_scope(self, request_id: str) -> RequestScope | None:
        with self._lock:
            return self._scopes.pop(request_id, None)

    def complete(self, request: lm15.Request) -> lm15.Response:
        text: list[str] = []
        end: lm15.StreamEndEvent | None = None
        for event in self.stream(request):
            if isinstance(event, lm15.StreamDeltaEvent) and isinstance(event.delta, lm15.TextDelta):
                text.append(event.delta.text)
            elif isinstance(event, lm15.StreamEndEvent):
                end = event
        assert end is not None and end.finish_reason is not None and end.usage is not None
        return lm15.Response(
            id=None,
            model=request.model,
            message=lm15.Message.assistant("".join(text)),
            finish_reason=end.finish_reason,
            usage=end.usage,
        )

    def stream(self, request: lm15.Request) -> Iterator[lm15.StreamEvent]:
        request_id, scope = self._scope_of(request)
        deadline = scope.deadline if scope else time.monotonic() + self.timeout_s
        call = self._stub.Generate(
            _to_wire(request, request_id), timeout=max(deadline - time.monotonic(), 0.001)
        )
        try:
            yield lm15.StreamStartEvent(id=request_id or None, model=request.model)
            for message in call:
                if scope is not None and scope.is_cancelled():
                    call.cancel()
                    raise lm15.TimeoutError(
                        "the caller cancelled the request", provider="raildebug"
                    )
                if message.WhichOneof("event") == "delta":
                    yield lm15.StreamDeltaEvent(delta=lm15.TextDelta(text=message.delta))
                    continue
                result = message.result
                self._record(result, scope)
                if result.finish_reason not in _FINISH:
                    raise _failure(result)
                yield lm15.StreamEndEvent(
                    finish_reason=_FINISH[result.finish_reason],
                    usage=lm15.Usage(
                        input_tokens=result.usage.prompt_tokens,
                        output_tokens=result.usage.completion_tokens,
                        total_tokens=result.usage.prompt_tokens + result.usage.completion_tokens,
                        cache_read_tokens=result.usage.cached_prompt_tokens,
                    ),
                )
        except grpc.RpcError as error:
            domain = error_from_rpc(error, "inference")
            raise _lm_error(domain) from domain
        finally:
            call.cancel()  # no-op once complete; frees the model when DSPy stopped reading

    def close(self) -> None:
        self._channel.close()

    def dump_state(self) -> dict[str, Any]:
        return {"address": self.address, "timeout_s": self.timeout_s}

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> InferenceEngine:
        return cls(str(state["address"]), float(state.get("timeout_s", DEFAULT_TIMEOUT_S)))

    def _scope_of(self, request: lm15.Request) -> tuple[str, RequestScope | None]:
        metadata = (request.config.extensions or {}).get("metadata") or {}
        request_id = str(metadata.get("request_id", ""))
        with self._lock:
            return request_id, self._scopes.get(request_id)

    def _record(self, result: inference_pb2.GenerationResult, scope: RequestScope | None) -> None:
        with self._lock:
            self.counters.calls += 1
            self.counters.prompt_tokens += result.usage.prompt_tokens
            self.counters.completion_tokens += result.usage.completion_tokens
            if scope is not None:
                scope.results.append(result)


def rail_lm(
    engine: InferenceEngine,
    *,
    max_tokens: int = 256,
    temperature: float = 0.0,
    seed: int | None = 0,
    num_retries: int = 0,
) -> dspy.LM:
    """A dspy.LM on our engine. No DSPy response cache: every call reaches the model."""
    extra: dict[str, Any] = {} if seed is None else {"seed": seed}
    return dspy.LM(
        f"{MODEL_PREFIX}inference",
        engine=engine,
        temperature=temperature,
        max_tokens=max_tokens,
        cache=False,
        num_retries=num_retries,
        stop=STOP,
        **extra,
    )


def _to_wire(request: lm15.Request, request_id: str) -> inference_pb2.GenerateRequest:
    messages: list[inference_pb2.ChatMessage] = []
    if request.system:
        system = (
            request.system
            if isinstance(request.system, str)
            else "".join(getattr(part, "text", "") for part in request.system)
        )
        messages.append(inference_pb2.ChatMessage(role="system", content=system))
    for message in request.messages:
        role = _ROLES.get(message.role)
        if role is None:
            raise lm15.InvalidRequestError(
                f"message role {message.role!r} cannot be sent to our inference service; "
                "use system, user or assistant messages",
                provider="raildebug",
            )
        messages.append(inference_pb2.ChatMessage(role=role, content=message.text or ""))
    config = request.config
    seed = config.seed if config.seed is not None else (config.extensions or {}).get("seed")
    sampling = inference_pb2.SamplingParams()
    if config.temperature is not None:
        sampling.temperature = config.temperature
    if config.top_p is not None:
        sampling.top_p = config.top_p
    if config.top_k is not None:
        sampling.top_k = config.top_k
    if seed is not None:
        sampling.seed = int(seed)
    return inference_pb2.GenerateRequest(
        chat=inference_pb2.ChatMessages(messages=messages),
        json_schema=_json_schema(config.response_format),
        max_tokens=config.max_tokens or 0,
        sampling=sampling,
        stop=list(config.stop),
        request_id=request_id,
    )


def _json_schema(response_format: dict[str, Any] | None) -> str:
    """The JSON schema the output must follow, from an OpenAI-style response_format."""
    if not response_format or response_format.get("type") == "text":
        return ""
    if response_format.get("type") == "json_object":
        return json.dumps({"type": "object"})
    schema = response_format.get("schema") or response_format.get("json_schema", {}).get("schema")
    return json.dumps(schema or {"type": "object"})


def _failure(result: inference_pb2.GenerationResult) -> lm15.LM15Error:
    if result.finish_reason == inference_pb2.FINISH_REASON_CANCELLED:
        return lm15.TimeoutError(
            "inference cancelled the generation (deadline passed or caller left)",
            provider="raildebug",
        )
    return lm15.ServerError(f"inference failed: {result.error}", provider="raildebug")


def _lm_error(error: RailDebugError) -> lm15.LM15Error:
    """The lm15 error DSPy expects; the domain error stays reachable as its __cause__."""
    if isinstance(error, InvalidRequest):
        return lm15.InvalidRequestError(str(error), provider="raildebug")
    if isinstance(error, Overloaded):
        return lm15.RateLimitError(str(error), provider="raildebug")
    if isinstance(error, DeadlineExceeded):
        return lm15.TimeoutError(str(error), provider="raildebug")
    return lm15.ServerError(str(error), provider="raildebug")
