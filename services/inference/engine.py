"""The llama.cpp engine: one loaded GGUF, one generation at a time, a bounded wait queue.

Concurrent callers queue for the single context instead of cutting each other off; a
cancelled or expired caller releases the model within one token. (Continuous batching over
several sequences replaces this single slot later without changing the interface.)
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import llama_cpp
from llama_cpp import Llama

from raildebug.errors import InvalidRequest, Overloaded
from raildebug.telemetry import get_logger
from services.inference.chat import render_chat, unknown_roles
from services.inference.models import (
    MAX_NEW_TOKENS,
    MAX_STOP_LENGTH,
    MAX_STOP_SEQUENCES,
    FinishReason,
    GenerationEvent,
    GenerationOutcome,
    GenerationRequest,
    ModelInfo,
    Sampling,
    TextDelta,
)
from services.inference.text_stream import StopAwareTextStream

log = get_logger(__name__)

DEFAULT_SAMPLING = Sampling(temperature=0.2, top_p=0.95, top_k=40, repeat_penalty=1.1)
_QUEUE_POLL_S = 0.05
_FTYPE_NAMES = {
    getattr(llama_cpp, name): name.removeprefix("LLAMA_FTYPE_MOSTLY_").removeprefix("LLAMA_FTYPE_")
    for name in dir(llama_cpp)
    if name.startswith("LLAMA_FTYPE_") and isinstance(getattr(llama_cpp, name), int)
}

IsCancelled = Callable[[], bool]


class LlamaEngine:
    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 4096,
        n_threads: int = 2,
        n_batch: int = 512,
        n_gpu_layers: int = 0,
        max_queue: int = 16,
        default_max_tokens: int = 256,
    ) -> None:
        self._model_path = model_path
        self._n_gpu_layers = n_gpu_layers
        self._n_threads = n_threads
        self._max_queue = max_queue
        self._default_max_tokens = default_max_tokens
        self._llama = Llama(
            model_path=str(model_path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            n_batch=n_batch,
            n_gpu_layers=n_gpu_layers,
            verbose=False,
        )
        self._vocab = llama_cpp.llama_model_get_vocab(self._llama.model)
        metadata = self._llama.metadata
        self._name = metadata.get("general.name") or model_path.stem
        self._architecture = metadata.get("general.architecture", "unknown")
        self._chat_template = metadata.get("tokenizer.chat_template", "")
        self._slot = threading.Lock()
        self._counters = threading.Lock()
        self._waiting = 0
        log.info(
            "model loaded",
            model=self._name,
            path=str(model_path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_gpu_layers=n_gpu_layers,
        )

    @property
    def model_name(self) -> str:
        return str(self._name)

    def info(self) -> ModelInfo:
        metadata = self._llama.metadata
        n_layers = int(llama_cpp.llama_model_n_layer(self._llama.model))
        ftype = int(metadata.get("general.file_type", -1))
        return ModelInfo(
            model=self.model_name,
            architecture=str(self._architecture),
            quantization=_FTYPE_NAMES.get(ftype, f"ftype {ftype}"),
            context_length=self._llama.n_ctx(),
            trained_context_length=int(metadata.get(f"{self._architecture}.context_length", 0)),
            slots=1,
            busy_slots=1 if self._slot.locked() else 0,
            queue_depth=self._waiting,
            n_gpu_layers_requested=self._n_gpu_layers,
            n_gpu_layers_offloaded=_offloaded_layers(self._n_gpu_layers, n_layers),
            n_layers=n_layers,
            n_threads=self._n_threads,
            model_path=str(self._model_path),
        )

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def generate(
        self,
        request: GenerationRequest,
        is_cancelled: IsCancelled = lambda: False,
        deadline: float | None = None,
    ) -> Iterator[GenerationEvent]:
        """Validate, wait for the model, then stream deltas and one final outcome.

        Raises InvalidRequest or Overloaded before anything is streamed; everything that
        goes wrong after that ends the stream with an outcome instead of an exception.
        """
        arrived = time.perf_counter()
        max_tokens = request.max_tokens or self._default_max_tokens
        tokens = self._prompt_tokens(request, max_tokens)
        self._enter_queue()
        acquired = False
        try:
            acquired = self._wait_for_slot(is_cancelled, deadline)
        finally:
            with self._counters:
                self._waiting -= 1
        queue_ms = (time.perf_counter() - arrived) * 1000
        if not acquired:
            yield self._outcome(FinishReason.CANCELLED, len(tokens), 0, 0, arrived, queue_ms)
            return
        try:
            yield from self._run(
                request, tokens, max_tokens, is_cancelled, deadline, arrived, queue_ms
            )
        finally:
            self._slot.release()

    def _run(
        self,
        request: GenerationRequest,
        tokens: list[int],
        max_tokens: int,
        is_cancelled: IsCancelled,
        deadline: float | None,
        arrived: float,
        queue_ms: float,
    ) -> Iterator[GenerationEvent]:
        sampling = _with_defaults(request.sampling)
        cached = self._reusable_prefix(tokens)
        self._llama.set_seed(
            sampling.seed if sampling.seed is not None else random.randrange(2**31)
        )
        text_stream = StopAwareTextStream(request.stop)
        started = time.perf_counter()
        first_token_at: float | None = None
        first_delta_at: float | None = None
        produced = 0
        finish = FinishReason.LENGTH
        error = ""
        token_stream = self._llama.generate(
            tokens,
            temp=sampling.temperature or 0.0,
            top_p=sampling.top_p if sampling.top_p is not None else 1.0,
            top_k=sampling.top_k or 0,
            repeat_penalty=sampling.repeat_penalty or 1.0,
            reset=True,
        )
        try:
            for token in token_stream:
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                if llama_cpp.llama_vocab_is_eog(self._vocab, token):
                    finish = FinishReason.EOS
                    break
                produced += 1
                step = text_stream.feed(self._llama.detokenize([token]))
                if step.text:
                    first_delta_at = first_delta_at or time.perf_counter()
                    yield TextDelta(step.text)
                if step.stopped:
                    finish = FinishReason.STOP
                    break
                if produced >= max_tokens:
                    break
                if is_cancelled() or _expired(deadline):
                    finish = FinishReason.CANCELLED
                    break
        except GeneratorExit:  # the caller stopped reading (client gone): that is a cancel
            _log_finished(
                request,
                FinishReason.CANCELLED,
                len(tokens),
                produced,
                cached,
                queue_ms,
                (time.perf_counter() - arrived) * 1000,
            )
            raise
        except Exception as failure:  # llama.cpp failure: end this stream, keep the server
            log.exception("generation failed", request_id=request.request_id)
            finish, error = FinishReason.ERROR, f"{type(failure).__name__}: {failure}"
            self._llama.reset()  # type: ignore[no-untyped-call]
        finally:
            token_stream.close()
        tail = text_stream.flush() if finish != FinishReason.CANCELLED else ""
        if tail:
            first_delta_at = first_delta_at or time.perf_counter()
            yield TextDelta(tail)
        ended = time.perf_counter()
        first = first_token_at or ended
        outcome = GenerationOutcome(
            finish_reason=finish,
            prompt_tokens=len(tokens),
            completion_tokens=produced,
            cached_prompt_tokens=cached,
            queue_ms=queue_ms,
            time_to_first_token_ms=((first_delta_at or ended) - arrived) * 1000,
            prefill_ms=(first - started) * 1000,
            decode_ms=(ended - first) * 1000,
            total_ms=(ended - arrived) * 1000,
            model=self.model_name,
            error=error,
        )
        _log_finished(request, finish, len(tokens), produced, cached, queue_ms, outcome.total_ms)
        yield outcome

    def _prompt_tokens(self, request: GenerationRequest, max_tokens: int) -> list[int]:
        _validate(request, max_tokens)
        if request.chat is not None:
            bos = self._llama.detokenize([self._llama.token_bos()], special=True).decode()
            eos = self._llama.detokenize([self._llama.token_eos()], special=True).decode()
            prompt = render_chat(request.chat, self._chat_template, bos=bos, eos=eos)
        else:
            prompt = request.prompt or ""
        tokens = self._llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        n_ctx = self._llama.n_ctx()
        if len(tokens) + max_tokens > n_ctx:
            raise InvalidRequest(
                f"prompt is {len(tokens)} tokens and max_tokens is {max_tokens}, but the "
                f"context holds {n_ctx}: shorten the prompt or lower max_tokens"
            )
        return tokens

    def _enter_queue(self) -> None:
        with self._counters:
            if self._slot.locked() and self._waiting >= self._max_queue:
                raise Overloaded(
                    f"inference is busy: 1 generation running and {self._waiting} waiting "
                    f"(queue limit {self._max_queue}); retry shortly",
                    retry_after_s=1.0,
                )
            self._waiting += 1

    def _wait_for_slot(self, is_cancelled: IsCancelled, deadline: float | None) -> bool:
        while not self._slot.acquire(timeout=_QUEUE_POLL_S):
            if is_cancelled() or _expired(deadline):
                return False
        if is_cancelled() or _expired(deadline):
            self._slot.release()
            return False
        return True

    def _reusable_prefix(self, tokens: list[int]) -> int:
        """Prompt tokens whose KV entries llama.generate will keep instead of prefilling."""
        evaluated = self._llama.input_ids[: self._llama.n_tokens]
        shared = 0
        for previous, current in zip(evaluated, tokens, strict=False):
            if previous != current:
                break
            shared += 1
        return min(shared, max(len(tokens) - 1, 0))

    def _outcome(
        self,
        finish: FinishReason,
        prompt_tokens: int,
        produced: int,
        cached: int,
        arrived: float,
        queue_ms: float,
    ) -> GenerationOutcome:
        total_ms = (time.perf_counter() - arrived) * 1000
        return GenerationOutcome(
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            completion_tokens=produced,
            cached_prompt_tokens=cached,
            queue_ms=queue_ms,
            time_to_first_token_ms=0.0,
            prefill_ms=0.0,
            decode_ms=0.0,
            total_ms=total_ms,
            model=self.model_name,
        )


def _validate(request: GenerationRequest, max_tokens: int) -> None:
    if request.chat is None and not (request.prompt or "").strip():
        raise InvalidRequest("prompt is empty: send a prompt or chat messages")
    if request.chat is not None:
        if not request.chat:
            raise InvalidRequest("chat has no messages: send at least one user message")
        roles = unknown_roles(request.chat)
        if roles:
            raise InvalidRequest(f"unknown chat role(s) {roles}: use system, user or assistant")
    if not 1 <= max_tokens <= MAX_NEW_TOKENS:
        raise InvalidRequest(f"max_tokens must be 1..{MAX_NEW_TOKENS}, got {max_tokens}")
    s = request.sampling
    if s.temperature is not None and not 0.0 <= s.temperature <= 2.0:
        raise InvalidRequest(f"temperature must be in [0, 2], got {s.temperature}")
    if s.top_p is not None and not 0.0 < s.top_p <= 1.0:
        raise InvalidRequest(f"top_p must be in (0, 1], got {s.top_p}")
    if s.repeat_penalty is not None and s.repeat_penalty < 1.0:
        raise InvalidRequest(f"repeat_penalty must be >= 1, got {s.repeat_penalty}")
    if len(request.stop) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(
            f"at most {MAX_STOP_SEQUENCES} stop sequences, got {len(request.stop)}"
        )
    too_long = [s for s in request.stop if len(s) > MAX_STOP_LENGTH or not s]
    if too_long:
        raise InvalidRequest(f"stop sequences must be 1..{MAX_STOP_LENGTH} characters")


def _with_defaults(sampling: Sampling) -> Sampling:
    d = DEFAULT_SAMPLING
    return Sampling(
        temperature=d.temperature if sampling.temperature is None else sampling.temperature,
        top_p=d.top_p if sampling.top_p is None else sampling.top_p,
        top_k=d.top_k if sampling.top_k is None else sampling.top_k,
        repeat_penalty=d.repeat_penalty
        if sampling.repeat_penalty is None
        else sampling.repeat_penalty,
        seed=sampling.seed,
    )


def _log_finished(
    request: GenerationRequest,
    finish: FinishReason,
    prompt_tokens: int,
    produced: int,
    cached: int,
    queue_ms: float,
    total_ms: float,
) -> None:
    log.info(
        "generation finished",
        request_id=request.request_id,
        finish=finish.value,
        prompt_tokens=prompt_tokens,
        completion_tokens=produced,
        cached=cached,
        queue_ms=round(queue_ms, 1),
        total_ms=round(total_ms, 1),
    )


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _offloaded_layers(requested: int, n_layers: int) -> int:
    if not llama_cpp.llama_supports_gpu_offload():
        return 0
    return n_layers if requested < 0 else min(requested, n_layers)
