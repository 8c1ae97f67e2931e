"""One request inside the batching engine: its prompt, sampler, progress, timings and event queue.

The caller's thread only reads `events` and sets `abandoned`; everything else is the engine
thread's.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from raildebug.domain import FinishReason, GenerationOutcome
from services.inference.models import GenerationEvent, GenerationRequest, TextDelta
from services.inference.sampling import SamplerChain
from services.inference.slots import Slot
from services.inference.speculation import PromptLookup
from services.inference.text_stream import StopAwareTextStream

IsCancelled = Callable[[], bool]


@dataclass(eq=False)
class Sequence:
    request: GenerationRequest
    prompt: list[int]
    max_tokens: int
    sampler: SamplerChain
    is_cancelled: IsCancelled
    deadline: float | None  # time.monotonic() clock
    arrived: float  # time.perf_counter() clock, like every timing below
    events: queue.SimpleQueue[GenerationEvent] = field(default_factory=queue.SimpleQueue)
    abandoned: threading.Event = field(default_factory=threading.Event)
    text: StopAwareTextStream = field(init=False)
    slot: Slot | None = None
    evaluated: int = 0  # prompt tokens in the KV cache, reused ones included
    cached: int = 0  # prompt tokens reused from a cached prefix
    next_token: int | None = None  # sampled, to be fed in the next step
    produced: int = 0
    lookup: PromptLookup | None = None  # drafts tokens, and counts them, when speculation is on
    admitted_at: float | None = None
    first_token_at: float | None = None
    last_token_at: float | None = None
    first_delta_at: float | None = None

    def __post_init__(self) -> None:
        self.text = StopAwareTextStream(self.request.stop)

    def departure(self) -> FinishReason | None:
        """Why the caller no longer wants tokens (out of time, or gone), None while it does."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return FinishReason.DEADLINE
        if self.abandoned.is_set() or self.is_cancelled():
            return FinishReason.CANCELLED
        return None

    def emit(self, text: str, now: float) -> None:
        if self.first_delta_at is None:
            self.first_delta_at = now
        self.events.put(TextDelta(text))

    def outcome(self, finish: FinishReason, model: str, error: str = "") -> GenerationOutcome:
        ended = time.perf_counter()
        admitted = self.admitted_at or ended
        first = self.first_token_at or ended
        return GenerationOutcome(
            finish_reason=finish,
            prompt_tokens=len(self.prompt),
            completion_tokens=self.produced,
            cached_prompt_tokens=self.cached,
            queue_ms=(admitted - self.arrived) * 1000,
            time_to_first_token_ms=((self.first_delta_at or ended) - self.arrived) * 1000
            if self.first_token_at is not None
            else 0.0,
            prefill_ms=(first - admitted) * 1000 if self.admitted_at is not None else 0.0,
            decode_ms=(ended - first) * 1000 if self.first_token_at is not None else 0.0,
            total_ms=(ended - self.arrived) * 1000,
            model=model,
            error=error,
            drafted_tokens=self.lookup.drafted if self.lookup else 0,
            accepted_draft_tokens=self.lookup.accepted if self.lookup else 0,
        )
