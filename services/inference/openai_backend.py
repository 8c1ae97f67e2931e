"""The openai backend: the same Generate contract served by any OpenAI-compatible endpoint.

Useful where the model runs elsewhere (a vLLM or llama-server fleet, a hosted API). Prompts go
to /completions, chat to /chat/completions, both streamed; a grammar or JSON schema is sent as
llama.cpp's `grammar` extension. Admission is bounded like the gguf engine's, so a slow endpoint
turns into RESOURCE_EXHAUSTED here instead of an unbounded pile of waiting threads, and a caller
whose deadline the requests ahead make impossible is refused at once: the endpoint is taken to
run `slots` requests at a time, at the token rate measured while it is busy
(services/inference/admission.py).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import openai

from raildebug.domain import FinishReason, GenerationOutcome
from raildebug.errors import Overloaded
from raildebug.observability import conventions as conv
from raildebug.observability.logging import get_logger
from raildebug.openai_endpoint import (
    domain_error,
    endpoint_name,
    finish_reason,
    open_client,
    resolve_model,
)
from raildebug.settings import OpenAISettings
from services.inference import instruments
from services.inference.admission import AdmissionModel, BusyMeter, describe
from services.inference.models import (
    GenerationEvent,
    GenerationRequest,
    ModelInfo,
    Sampling,
    TextDelta,
    TokenCounts,
    deadline_exceeded,
)
from services.inference.sampling import grammar_for
from services.inference.text_stream import StopAwareTextStream
from services.inference.validation import validate, with_defaults

log = get_logger(__name__)

# A read that fails this close to the deadline failed because of it (its timeout is the rest).
_DEADLINE_SLACK_S = 0.05

ESTIMATED_CHARS_PER_TOKEN = 3.0


@dataclass(eq=False)
class _Flight:
    """A request in flight to the endpoint: what admission needs of it."""

    max_tokens: int
    produced: int = 0


class OpenAIBackend:
    def __init__(
        self,
        endpoint: OpenAISettings,
        *,
        slots: int = 4,
        max_queue: int = 16,
        default_max_tokens: int = 256,
    ) -> None:
        if not endpoint.base_url:
            raise ValueError("backend openai needs RAILDEBUG_OPENAI_BASE_URL")
        self._client = open_client(endpoint)
        self._base_url = endpoint_name(endpoint)
        self._timeout_s = endpoint.timeout_s
        self._slots = slots
        self._capacity = slots + max_queue
        self._default_max_tokens = default_max_tokens
        self._lock = threading.Lock()
        self._in_flight = 0
        self._flights: list[_Flight] = []
        self._admission = AdmissionModel(slots)
        self._meter = BusyMeter(self._admission.cost)
        self._model = resolve_model(self._client, endpoint)
        log.info("openai backend ready", base_url=self._base_url, model=self._model)

    @property
    def model_name(self) -> str:
        return self._model

    def info(self) -> ModelInfo:
        with self._lock:
            in_flight = self._in_flight
        return ModelInfo(
            model=self._model,
            architecture="unknown",
            quantization="unknown",
            context_length=0,
            trained_context_length=0,
            slots=self._slots,
            busy_slots=min(in_flight, self._slots),
            queue_depth=max(in_flight - self._slots, 0),
            n_gpu_layers_requested=0,
            n_gpu_layers_offloaded=0,
            n_layers=0,
            n_threads=0,
            model_path="",
            backend="openai",
        )

    def token_counts(self, texts: Sequence[str]) -> TokenCounts:
        """The chat completions API has no tokenizer endpoint: estimate from the length, on the
        high side (BPE tokenizers average 3.5-4.5 characters a token on English and code)."""
        return TokenCounts(
            tuple(math.ceil(len(text) / ESTIMATED_CHARS_PER_TOKEN) for text in texts),
            estimated=True,
        )

    def generate(
        self,
        request: GenerationRequest,
        is_cancelled: Callable[[], bool] = lambda: False,
        deadline: float | None = None,
    ) -> Iterator[GenerationEvent]:
        """Stream from the endpoint; errors before the first chunk raise domain errors."""
        arrived = time.perf_counter()
        max_tokens = request.max_tokens or self._default_max_tokens
        validate(request, max_tokens)
        grammar = grammar_for(request.grammar, request.json_schema)
        flight = self._enter(max_tokens, deadline)
        try:
            yield from self._stream(
                request, max_tokens, grammar, is_cancelled, deadline, arrived, flight
            )
        finally:
            with self._lock:
                self._in_flight -= 1
                self._flights.remove(flight)
                instruments.busy_slots.add(-1)
                if not self._in_flight:
                    self._meter.idle()

    def _enter(self, max_tokens: int, deadline: float | None) -> _Flight:
        with self._lock:
            if self._in_flight >= self._capacity:
                instruments.rejected.add(1)
                raise Overloaded(
                    f"inference is busy: {self._in_flight} requests in flight to "
                    f"{self._base_url} (limit {self._capacity}); retry shortly"
                )
            self._admit_by_deadline(max_tokens, deadline)
            flight = _Flight(max_tokens)
            self._flights.append(flight)
            if not self._in_flight:
                self._meter.busy()
            self._in_flight += 1
            instruments.busy_slots.add(1)
            return flight

    def _admit_by_deadline(self, max_tokens: int, deadline: float | None) -> None:
        """Refuse a request the ones in flight would make miss its deadline (under the lock)."""
        if deadline is None:
            return
        model = self._admission
        ahead = [model.work(0, f.max_tokens, f.produced) for f in self._flights]
        estimate = model.estimate(ahead, model.work(0, max_tokens))
        retry_after_s = model.refusal(estimate, deadline)
        if estimate is None or retry_after_s is None:
            return
        instruments.rejected.add(1)
        raise Overloaded(
            f"inference is busy ({self._base_url}) and this request would miss its deadline: "
            f"{describe(estimate, deadline, time.monotonic())}; retry in "
            f"{math.ceil(retry_after_s * 1000)} ms or allow more time",
            retry_after_s=retry_after_s,
        )

    def _stream(
        self,
        request: GenerationRequest,
        max_tokens: int,
        grammar: str,
        is_cancelled: Callable[[], bool],
        deadline: float | None,
        arrived: float,
        flight: _Flight,
    ) -> Iterator[GenerationEvent]:
        chunks = self._open(request, max_tokens, grammar, deadline)
        text = StopAwareTextStream(request.stop)
        produced, prompt_tokens = 0, 0
        finish, error = FinishReason.LENGTH, ""
        first_at: float | None = None
        last_at: float | None = None
        try:
            for chunk in chunks:
                if chunk.usage is not None:
                    prompt_tokens = chunk.usage.prompt_tokens
                    produced = max(produced, chunk.usage.completion_tokens)
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                piece = _choice_text(choice)
                if piece:
                    now = time.perf_counter()
                    if first_at is None:
                        first_at = now
                    last_at = now
                    produced += 1
                    flight.produced = produced
                    self._meter.token()
                    step = text.feed(piece.encode("utf-8"))
                    if step.text:
                        yield TextDelta(step.text)
                    if step.stopped:
                        finish = FinishReason.STOP
                        break
                if choice.finish_reason:
                    finish = finish_reason(
                        choice.finish_reason, stop_strings_given=bool(request.stop)
                    )
                if deadline is not None and time.monotonic() >= deadline:
                    finish = FinishReason.DEADLINE
                    break
                if is_cancelled():
                    finish = FinishReason.CANCELLED
                    break
        except openai.OpenAIError as failure:
            if deadline is not None and time.monotonic() >= deadline - _DEADLINE_SLACK_S:
                finish = FinishReason.DEADLINE  # the read timed out because the deadline did
            else:
                finish, error = FinishReason.ERROR, f"{type(failure).__name__}: {failure}"
                log.warning("openai stream failed", request_id=request.request_id, error=error)
        finally:
            chunks.close()  # closes the HTTP response: the endpoint stops generating
        if finish.completed:
            self._admission.completion.observe(produced, max_tokens)
        tail = text.flush() if finish.completed else ""
        if tail:
            yield TextDelta(tail)
        ended = time.perf_counter()
        instruments.generation_finished(
            instruments.generation_attributes(conv.GEN_AI_PROVIDER_OPENAI, self._model, request),
            finish,
            arrived=arrived,
            first_token_at=first_at,
            last_token_at=last_at,
            ended=ended,
            prompt_tokens=prompt_tokens,
            cached_tokens=0,
            completion_tokens=produced,
        )
        log.info(
            "generation finished",
            request_id=request.request_id,
            finish=finish.value,
            prompt_tokens=prompt_tokens,
            completion_tokens=produced,
            cached=0,
            queue_ms=0.0,
            total_ms=round((ended - arrived) * 1000, 1),
        )
        outcome = GenerationOutcome(
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            completion_tokens=produced,
            cached_prompt_tokens=0,
            queue_ms=0.0,
            time_to_first_token_ms=((first_at or ended) - arrived) * 1000,
            prefill_ms=((first_at or ended) - arrived) * 1000,
            decode_ms=(ended - (first_at or ended)) * 1000,
            total_ms=(ended - arrived) * 1000,
            model=self._model,
            error=error,
        )
        if finish is FinishReason.DEADLINE:
            raise deadline_exceeded(outcome, max_tokens)
        yield outcome

    def _open(
        self, request: GenerationRequest, max_tokens: int, grammar: str, deadline: float | None
    ) -> Any:
        timeout = self._timeout_s
        if deadline is not None:
            timeout = max(min(timeout, deadline - time.monotonic()), 0.001)
        common: dict[str, Any] = {
            "model": self._model,
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            "stop": list(request.stop) or None,
            "timeout": timeout,
            **_sampling_arguments(with_defaults(request.sampling), grammar),
        }
        try:
            if request.chat is not None:
                messages: list[Any] = [{"role": t.role, "content": t.content} for t in request.chat]
                return self._client.chat.completions.create(messages=messages, **common)
            return self._client.completions.create(prompt=request.prompt or "", **common)
        except openai.OpenAIError as error:
            raise domain_error(error, self._base_url) from error


def _sampling_arguments(s: Sampling, grammar: str) -> dict[str, Any]:
    extra: dict[str, Any] = {"top_k": s.top_k or 0, "repeat_penalty": s.repeat_penalty or 1.0}
    if grammar:
        extra["grammar"] = grammar
    return {
        "temperature": s.temperature,
        "top_p": s.top_p,
        "seed": s.seed,
        "extra_body": extra,
    }


def _choice_text(choice: Any) -> str:
    delta = getattr(choice, "delta", None)
    if delta is not None:
        return str(delta.content or "")
    return str(getattr(choice, "text", "") or "")
