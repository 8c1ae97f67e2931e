"""Response-cache stages: look up before retrieval, replay a hit as a stream, store a miss."""

from __future__ import annotations

import time
from collections.abc import Iterator

from opentelemetry.trace import Span

from raildebug.observability import conventions as conv
from services.orchestrator import instruments
from services.orchestrator.models import (
    DEFAULT_ANSWER_TOKENS,
    DEFAULT_CONTEXT_K,
    AnswerDelta,
    ContextEvent,
    DebugEvent,
)
from services.orchestrator.ports import Analyzer
from services.orchestrator.response_cache import CachedAnswer, ResponseCache, cache_key
from services.orchestrator.stage_sequence import DebugState


class CacheLookup:
    name = "cache_lookup"

    def __init__(self, cache: ResponseCache, analyzer: Analyzer) -> None:
        self._cache = cache
        self._analyzer = analyzer

    def applies(self, state: DebugState) -> bool:
        return True

    def run(self, state: DebugState, span: Span) -> Iterator[DebugEvent]:
        q = state.question
        model = self._analyzer.model(timeout_s=state.remaining_s())
        state.cache_key = cache_key(
            q,
            q.k or DEFAULT_CONTEXT_K,
            q.max_tokens or DEFAULT_ANSWER_TOKENS,
            state.require_template().ref,
            model,
        )
        entry = self._cache.get(state.cache_key)
        instruments.cache_lookups.add(1, {conv.ATTR_CACHE_HIT: entry is not None})
        span.set_attribute(conv.ATTR_CACHE_HIT, entry is not None)
        if entry is not None:
            state.cached_deltas = entry.deltas
            state.passages = entry.passages
            state.generation = entry.generation
        return iter(())


class ReplayCached:
    name = "cache_replay"

    def applies(self, state: DebugState) -> bool:
        return state.cache_hit

    def run(self, state: DebugState, span: Span) -> Iterator[DebugEvent]:
        yield ContextEvent(passages=state.passages, retrieval_ms=0.0)
        for delta in state.cached_deltas or []:
            state.first_delta_at = state.first_delta_at or time.monotonic()
            state.answer_parts.append(delta)
            yield AnswerDelta(delta)


class StoreInCache:
    """Only complete, fully grounded answers are worth repeating."""

    name = "cache_store"

    def __init__(self, cache: ResponseCache) -> None:
        self._cache = cache

    def applies(self, state: DebugState) -> bool:
        g = state.generation
        return (
            not state.cache_hit
            and not state.degraded_reason
            and bool(state.cache_key)
            and g is not None
            and g.finish_reason.completed
            and not g.error
        )

    def run(self, state: DebugState, span: Span) -> Iterator[DebugEvent]:
        assert state.generation is not None
        self._cache.put(
            state.cache_key, CachedAnswer(state.passages, state.answer_parts, state.generation)
        )
        return iter(())
