"""Retrieval stage: passages for the question, or a degraded answer without them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from opentelemetry.trace import Span

from raildebug.errors import DeadlineExceeded, NotReady, Overloaded
from raildebug.observability import conventions as conv
from raildebug.observability.logging import get_logger
from services.orchestrator.models import DEFAULT_CONTEXT_K, DebugEvent
from services.orchestrator.ports import PassageSource
from services.orchestrator.stage_sequence import DebugState

log = get_logger(__name__)


@dataclass(frozen=True)
class DeadlinePolicy:
    retrieval_share: float = 0.2  # of the remaining time
    max_retrieval_s: float = 5.0


class Retrieve:
    """The retriever gets a share of the deadline; if it is down or slower, the answer is
    written without context and marked degraded instead of failing."""

    name = "retrieval"

    def __init__(self, passages: PassageSource, deadlines: DeadlinePolicy, alpha: float) -> None:
        self._passages = passages
        self._deadlines = deadlines
        self._alpha = alpha

    def applies(self, state: DebugState) -> bool:
        return not state.cache_hit

    def run(self, state: DebugState, span: Span) -> Iterator[DebugEvent]:
        q = state.question
        k = q.k or DEFAULT_CONTEXT_K
        budget = min(
            self._deadlines.max_retrieval_s, state.remaining_s() * self._deadlines.retrieval_share
        )
        span.set_attributes(
            {
                conv.ATTR_RETRIEVAL_K: k,
                conv.ATTR_RETRIEVAL_ALPHA: self._alpha,
                conv.ATTR_RETRIEVAL_TIMEOUT: budget,
            }
        )
        started = time.monotonic()
        query = "\n".join(part for part in (q.question, q.error_log[-1000:]) if part.strip())
        try:
            state.passages = self._passages.search(query, k, q.filter, timeout_s=budget)
        # Not InvalidRequest: the retriever refusing the caller's filter is the caller's error.
        except (NotReady, DeadlineExceeded, Overloaded) as error:
            log.warning("retrieval degraded", error=str(error))
            state.degraded_reason = f"retrieval skipped: {error}"
            span.set_attributes(
                {conv.ATTR_DEGRADED: True, conv.ATTR_DEGRADED_REASON: state.degraded_reason}
            )
        state.retrieval_ms = (time.monotonic() - started) * 1000
        span.set_attribute(conv.ATTR_RETRIEVAL_PASSAGES, len(state.passages))
        return iter(())
