"""A DSPy LM engine that generates through the orchestrator's one Inference client.

DSPy 3.4 deprecates custom `BaseLM.forward` subclasses; the supported extension point is an
engine with `complete(Request) -> Response` and `stream(Request)` handed to `dspy.LM(engine=...)`.
DSPy keeps owning adapters, history and streaming listeners; this engine only maps one canonical
lm15 request onto one `InferenceClient.generate` call (clients/inference.py, which owns the
channel, deadlines, cancellation and error mapping) and its deltas and GenerationOutcome back onto
lm15 stream events. Callers that need per-request control (deadline, cancellation, the final
outcomes) open a `RequestScope` under a request id and pass that id as LM metadata.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy import lm15

from raildebug.domain import FinishReason, GenerationOutcome
from raildebug.errors import DeadlineExceeded, InvalidRequest, Overloaded, RailDebugError
from services.orchestrator.clients.inference import Generation, InferenceClient, SamplingChoice

MODEL_PREFIX = "raildebug/"
# The packaged Gemma is a base model served as a "User:/Assistant:" transcript: stop at the end
# marker of DSPy's ChatAdapter or where the model starts to write the next turn itself.
STOP = ("[[ ## completed ## ]]", "\n\nUser:", "\n\nSystem:")
DEFAULT_TIMEOUT_S = 300.0
_ROLES = {"user": "user", "assistant": "assistant", "developer": "system", "system": "system"}
_FINISH = {
    FinishReason.LENGTH: "length",
    FinishReason.STOP: "stop",
    FinishReason.EOS: "stop",
}


@dataclass
class RequestScope:
    """Per-request control shared between the caller of a DSPy program and this engine."""

    deadline: float  # time.monotonic()
    is_cancelled: Callable[[], bool] = lambda: False
    results: list[GenerationOutcome] = field(default_factory=list)


@dataclass
class EngineCounters:
    """What compilation costs: calls and tokens through this engine."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class InferenceEngine:
    """`dspy.LM(engine=...)` backend over an `InferenceClient`.

    Declares structured-output support: with DSPy's JSONAdapter the signature's JSON schema goes
    to the service, which enforces it as a grammar (slow on CPU; see program.rail_settings).
    The client belongs to whoever made it; `close()` closes it for callers that hand it over.
    """

    supports_response_schema = True
    supported_params = frozenset({"response_format", "seed", "stop", "top_p", "temperature"})

    def __init__(self, inference: InferenceClient, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.inference = inference
        self.timeout_s = timeout_s
        self.counters = EngineCounters()
        self._scopes: dict[str, RequestScope] = {}
        self._lock = threading.Lock()

    def model_name(self, timeout_s: float = 10.0) -> str:
        """The served model's name, as the Inference client reports it."""
        return self.inference.model_name(timeout_s)

    def open_scope(self, request_id: str, scope: RequestScope) -> None:
        with self._lock:
            if request_id in self._scopes:
                raise ValueError(f"a request scope {request_id!r} is already open")
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
        is_cancelled = scope.is_cancelled if scope else _never
        generation = to_generation(request, request_id)
        items = self.inference.generate(
            generation, timeout_s=deadline - time.monotonic(), is_cancelled=is_cancelled
        )
        ended = False
        try:
            yield lm15.StreamStartEvent(id=request_id or None, model=request.model)
            for item in items:
                if isinstance(item, str):
                    yield lm15.StreamDeltaEvent(delta=lm15.TextDelta(text=item))
                    continue
                self._record(item, scope)
                if item.finish_reason not in _FINISH:
                    raise _failure(item)
                yield lm15.StreamEndEvent(
                    finish_reason=_FINISH[item.finish_reason],
                    usage=lm15.Usage(
                        input_tokens=item.prompt_tokens,
                        output_tokens=item.completion_tokens,
                        total_tokens=item.prompt_tokens + item.completion_tokens,
                        cache_read_tokens=item.cached_prompt_tokens,
                    ),
                )
                ended = True
        except RailDebugError as error:
            raise _lm_error(error) from error
        finally:
            items.close()  # cancels the call when DSPy stopped reading before the outcome
        if ended:
            return
        if is_cancelled():  # the client stops reading, without an outcome, once cancelled
            raise lm15.TimeoutError("the caller cancelled the request", provider="raildebug")
        raise lm15.ServerError(
            "inference ended the stream without a result; retry", provider="raildebug"
        )

    def close(self) -> None:
        self.inference.close()

    def dump_state(self) -> dict[str, Any]:
        return {"address": self.inference.address, "timeout_s": self.timeout_s}

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> InferenceEngine:
        return cls(
            InferenceClient(str(state["address"])),
            float(state.get("timeout_s", DEFAULT_TIMEOUT_S)),
        )

    def _scope_of(self, request: lm15.Request) -> tuple[str, RequestScope | None]:
        metadata = (request.config.extensions or {}).get("metadata") or {}
        request_id = str(metadata.get("request_id", ""))
        with self._lock:
            return request_id, self._scopes.get(request_id)

    def _record(self, outcome: GenerationOutcome, scope: RequestScope | None) -> None:
        with self._lock:
            self.counters.calls += 1
            self.counters.prompt_tokens += outcome.prompt_tokens
            self.counters.completion_tokens += outcome.completion_tokens
            if scope is not None:
                scope.results.append(outcome)


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


def to_generation(request: lm15.Request, request_id: str) -> Generation:
    """One lm15 request as one Generate call: chat turns, sampling, schema, stop, request id."""
    turns: list[tuple[str, str]] = []
    if request.system:
        system = (
            request.system
            if isinstance(request.system, str)
            else "".join(getattr(part, "text", "") for part in request.system)
        )
        turns.append(("system", system))
    for message in request.messages:
        role = _ROLES.get(message.role)
        if role is None:
            raise lm15.InvalidRequestError(
                f"message role {message.role!r} cannot be sent to our inference service; "
                "use system, user or assistant messages",
                provider="raildebug",
            )
        turns.append((role, message.text or ""))
    config = request.config
    seed = config.seed if config.seed is not None else (config.extensions or {}).get("seed")
    return Generation(
        chat=tuple(turns),
        json_schema=_json_schema(config.response_format),
        max_tokens=config.max_tokens or 0,
        sampling=SamplingChoice(
            temperature=config.temperature,
            top_p=config.top_p,
            top_k=config.top_k,
            seed=None if seed is None else int(seed),
        ),
        stop=tuple(config.stop),
        request_id=request_id,
    )


def _never() -> bool:
    return False


def _json_schema(response_format: dict[str, Any] | None) -> str:
    """The JSON schema the output must follow, from an OpenAI-style response_format."""
    if not response_format or response_format.get("type") == "text":
        return ""
    if response_format.get("type") == "json_object":
        return json.dumps({"type": "object"})
    schema = response_format.get("schema") or response_format.get("json_schema", {}).get("schema")
    return json.dumps(schema or {"type": "object"})


def _failure(outcome: GenerationOutcome) -> lm15.LM15Error:
    if outcome.finish_reason == FinishReason.CANCELLED:
        return lm15.TimeoutError(
            "inference cancelled the generation (deadline passed or caller left)",
            provider="raildebug",
        )
    return lm15.ServerError(f"inference failed: {outcome.error}", provider="raildebug")


def _lm_error(error: RailDebugError) -> lm15.LM15Error:
    """The lm15 error DSPy expects; the domain error stays reachable as its __cause__."""
    if isinstance(error, InvalidRequest):
        return lm15.InvalidRequestError(str(error), provider="raildebug")
    if isinstance(error, Overloaded):
        return lm15.RateLimitError(str(error), provider="raildebug")
    if isinstance(error, DeadlineExceeded):
        return lm15.TimeoutError(str(error), provider="raildebug")
    return lm15.ServerError(str(error), provider="raildebug")
