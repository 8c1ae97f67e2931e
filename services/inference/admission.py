"""Admission by expected wait: can a new request still finish before its caller's deadline?

A backend serves its running requests together: continuous batching in the gguf engine, an
endpoint's own batching behind the openai backend. While k requests run, each advances at about
1/k of the backend's throughput, and a waiting request starts when one of `slots` frees. So
`schedule` replays that for the work each request still has (in seconds of backend time, FIFO
after the ones ahead) and says when a new request would start and finish.

`StepCost` measures what work costs: seconds per prompt token and per generated token, fitted
to the backend's recent steps by least squares that forget old steps; `CompletionRatio` learns
how much of `max_tokens` requests actually generate. Until enough steps are measured there is no
estimate and only the queue bound applies.

`AdmissionModel.refusal` turns an estimate into a decision: refuse (RESOURCE_EXHAUSTED, retry
after the returned seconds) when the queue ahead is why the deadline cannot be met. A request
that could not finish in time even on an idle backend is admitted, and ends with
DEADLINE_EXCEEDED as before: waiting would not help it, so it is not overload.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Fewer measured steps than this: no estimate yet.
MIN_STEPS = 8
# Weight of a step after n more steps: FORGET ** n (about the last 100 steps count).
FORGET = 0.99
# Bounds of the retry-after a refusal suggests.
MIN_RETRY_AFTER_S = 0.1
MAX_RETRY_AFTER_S = 60.0


@dataclass(frozen=True)
class Work:
    """What one request still has to do."""

    prompt_tokens: int  # prompt tokens not evaluated yet
    decode_tokens: float  # tokens it is expected to generate still


@dataclass(frozen=True)
class Estimate:
    """Seconds from now, for a new request behind `ahead` others."""

    start_s: float  # when it would get a slot
    finish_s: float  # when it would be done
    alone_s: float  # how long it would take on an idle backend
    ahead: int


class StepCost:
    """Seconds per prompt token (`a`) and per generated token (`b`), fitted to steps that
    took `seconds` for `prompt_tokens` and `decode_tokens`: T = a * p + b * d, weighted least
    squares with exponential forgetting, both coefficients kept non-negative."""

    def __init__(self, forget: float = FORGET, min_steps: int = MIN_STEPS) -> None:
        self._forget = forget
        self._min_steps = min_steps
        self._lock = threading.Lock()
        self._pp = self._pd = self._dd = self._pt = self._dt = 0.0
        self._steps = 0

    def observe(self, prompt_tokens: int, decode_tokens: int, seconds: float) -> None:
        if prompt_tokens + decode_tokens <= 0 or seconds <= 0:
            return
        p, d, f = float(prompt_tokens), float(decode_tokens), self._forget
        with self._lock:
            self._pp = self._pp * f + p * p
            self._pd = self._pd * f + p * d
            self._dd = self._dd * f + d * d
            self._pt = self._pt * f + p * seconds
            self._dt = self._dt * f + d * seconds
            self._steps += 1

    def coefficients(self) -> tuple[float, float] | None:
        """(seconds per prompt token, seconds per generated token), None until measured."""
        with self._lock:
            if self._steps < self._min_steps:
                return None
            pp, pd, dd, pt, dt = self._pp, self._pd, self._dd, self._pt, self._dt
        det = pp * dd - pd * pd
        if det > 1e-9 * max(pp * dd, 1e-300):
            a, b = (pt * dd - dt * pd) / det, (dt * pp - pt * pd) / det
            if a >= 0 and b >= 0:
                return a, b
        # One kind of token only, or a fit that came out negative: one cost for every token,
        # T = c * (p + d).
        tokens = pp + 2 * pd + dd
        if tokens <= 0:
            return None
        c = (pt + dt) / tokens
        return (c, c) if c > 0 else None

    def seconds(self, work: Work) -> float | None:
        fitted = self.coefficients()
        if fitted is None:
            return None
        a, b = fitted
        return work.prompt_tokens * a + work.decode_tokens * b


class BusyMeter:
    """Feeds a StepCost from a backend that streams tokens but shows no steps (an OpenAI
    endpoint): every `window_s` of busy time, with the tokens that arrived in it, is one
    observation of generated tokens only (prefill time is spread over them); time with nothing
    in flight is never counted."""

    def __init__(
        self,
        cost: StepCost,
        window_s: float = 0.1,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._cost = cost
        self._window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None  # start of the current window; None while idle
        self._tokens = 0

    def busy(self) -> None:
        """The first request went in flight."""
        with self._lock:
            self._since, self._tokens = self._clock(), 0

    def token(self) -> None:
        with self._lock:
            if self._since is None:
                return
            self._tokens += 1
            now = self._clock()
            if now - self._since >= self._window_s:
                self._cost.observe(0, self._tokens, now - self._since)
                self._since, self._tokens = now, 0

    def idle(self) -> None:
        """The last request in flight ended."""
        with self._lock:
            if self._since is not None and self._tokens:
                self._cost.observe(0, self._tokens, self._clock() - self._since)
            self._since, self._tokens = None, 0


class CompletionRatio:
    """The share of max_tokens that finished requests generated (moving average), 1.0 at
    first: before any request has finished, expect every one to use all its tokens."""

    def __init__(self, weight: float = 0.1) -> None:
        self._weight = weight
        self._ratio = 1.0
        self._lock = threading.Lock()

    def observe(self, produced: int, max_tokens: int) -> None:
        if max_tokens <= 0:
            return
        sample = min(max(produced / max_tokens, 0.0), 1.0)
        with self._lock:
            self._ratio += self._weight * (sample - self._ratio)

    @property
    def value(self) -> float:
        with self._lock:
            return self._ratio


def schedule(ahead: Sequence[float], new: float, slots: int) -> tuple[float, float]:
    """(start, finish) of `new`, in seconds from now, behind `ahead` in FIFO order.

    Every item is a request's remaining work in seconds of backend time; at most `slots` run at
    once and share the backend equally (k running: each progresses at 1/k), the first `slots`
    of `ahead` running now.
    """
    if slots < 1:
        raise ValueError("slots must be at least 1")
    queue = [max(w, 0.0) for w in ahead]
    active: list[tuple[float, bool]] = []  # (remaining, is the new request)
    position, now, start = 0, 0.0, None
    pending_new = True
    while True:
        while len(active) < slots and (position < len(queue) or pending_new):
            if position < len(queue):
                active.append((queue[position], False))
                position += 1
            else:
                active.append((max(new, 0.0), True))
                pending_new, start = False, now
        if not active:  # nothing ahead and nothing new: cannot happen, but never loop
            return now, now
        least = min(remaining for remaining, _ in active)
        now += least * len(active)
        still: list[tuple[float, bool]] = []
        for remaining, is_new in active:
            left = remaining - least
            if left <= 1e-12:
                if is_new:
                    assert start is not None
                    return start, now
            else:
                still.append((left, is_new))
        active = still


class AdmissionModel:
    """What one backend knows to admit by: step costs, completion ratio, its slots."""

    def __init__(
        self, slots: int, *, min_steps: int = MIN_STEPS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.slots = slots
        self.cost = StepCost(min_steps=min_steps)
        self.completion = CompletionRatio()
        self._clock = clock

    def work(self, prompt_tokens: int, max_tokens: int, produced: int = 0) -> Work:
        """A request's expected remaining work from what it has done so far."""
        left = max(max_tokens - produced, 0)
        return Work(max(prompt_tokens, 0), left * self.completion.value)

    def estimate(self, ahead: Sequence[Work], new: Work) -> Estimate | None:
        """When a new request would start and finish; None until costs are measured."""
        fitted = self.cost.coefficients()
        if fitted is None:
            return None
        a, b = fitted

        def seconds(work: Work) -> float:
            return work.prompt_tokens * a + work.decode_tokens * b

        alone = seconds(new)
        start, finish = schedule([seconds(w) for w in ahead], alone, self.slots)
        return Estimate(start_s=start, finish_s=finish, alone_s=alone, ahead=len(ahead))

    def refusal(self, estimate: Estimate | None, deadline: float | None) -> float | None:
        """Seconds to retry after when the queue ahead makes the deadline impossible, else
        None (admit). `deadline` is on the time.monotonic() clock."""
        if estimate is None or deadline is None or estimate.start_s <= 0:
            return None
        available = deadline - self._clock()
        if estimate.finish_s <= available:
            return None
        if estimate.start_s < available and estimate.alone_s > available:
            return None  # too big for its deadline even alone: DEADLINE_EXCEEDED, not overload
        # After `wait` seconds the work ahead has shrunk by that much (no new arrivals), so a
        # retry with the same budget would fit; no later than a slot frees for it.
        wait = min(estimate.finish_s - available, max(estimate.start_s, MIN_RETRY_AFTER_S))
        return min(max(wait, MIN_RETRY_AFTER_S), MAX_RETRY_AFTER_S)


def describe(estimate: Estimate, deadline: float, now: float) -> str:
    """For the Overloaded message: the numbers behind the refusal."""
    return (
        f"{estimate.ahead} requests ahead: it would start in ~{_seconds(estimate.start_s)} and "
        f"finish in ~{_seconds(estimate.finish_s)}, but its deadline is in "
        f"{_seconds(max(deadline - now, 0.0))}"
    )


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 100 else f"{math.ceil(value)} s"
