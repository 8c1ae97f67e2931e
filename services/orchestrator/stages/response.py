"""Response stage: the final event, with usage, citations, variant, cache and cost; then the
answer is recorded (for feedback) and measured."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace

from opentelemetry.trace import Span

from raildebug.observability import conventions as conv
from raildebug.observability.logging import get_logger
from services.orchestrator import instruments
from services.orchestrator.citations import cited_labels
from services.orchestrator.costs import PriceTable
from services.orchestrator.models import (
    AnsweredRequest,
    ContextPassage,
    DebugEvent,
    DebugSummary,
)
from services.orchestrator.stage_sequence import DebugState, summary_attributes

log = get_logger(__name__)


class Respond:
    name = "response"

    def __init__(
        self,
        prices: PriceTable,
        on_answered: Callable[[AnsweredRequest], None] | None = None,
    ) -> None:
        self._prices = prices
        self._on_answered = on_answered

    def applies(self, state: DebugState) -> bool:
        return True

    def run(self, state: DebugState, span: Span) -> Iterator[DebugEvent]:
        g = state.generation
        if g is None:
            raise RuntimeError("the analysis or cache_replay stage must run before this one")
        if state.cache_hit:  # nothing was generated for this request
            g = replace(g, queue_ms=0.0, prefill_ms=0.0, decode_ms=0.0, total_ms=0.0)
        ended = time.monotonic()
        text = state.answer
        summary = DebugSummary(
            request_id=state.request_id,
            generation=g,
            latency_ms=(ended - state.started) * 1000,
            time_to_first_token_ms=((state.first_delta_at or ended) - state.started) * 1000,
            prompt_version=state.require_template().ref,
            cited_passage_ids=cited_ids(text, state.passages),
            degraded=bool(state.degraded_reason),
            degraded_reason=state.degraded_reason,
            prompt_variant=state.prompt_variant,
            cache_hit=state.cache_hit,
            estimated_cost_usd=(
                0.0
                if state.cache_hit
                else self._prices.estimate_usd(g.model, g.prompt_tokens, g.completion_tokens)
            ),
        )
        state.summary = summary
        span.set_attributes(summary_attributes(summary))
        _measure(summary)
        log.info(
            "answered",
            request_id=summary.request_id,
            client_id=state.question.client_id,
            passages=len(state.passages),
            finish=g.finish_reason,
            completion_tokens=g.completion_tokens,
            prompt=summary.prompt_version,
            variant=summary.prompt_variant,
            cache_hit=summary.cache_hit,
            degraded=summary.degraded,
            latency_ms=round(summary.latency_ms, 1),
        )
        if self._on_answered is not None:
            self._on_answered(AnsweredRequest(state.question, state.passages, text, summary))
        yield summary


def cited_ids(answer: str, passages: list[ContextPassage]) -> list[str]:
    by_label = {p.label: p.id for p in passages}
    cited: list[str] = []
    for label in cited_labels(answer):
        passage_id = by_label.get(f"[{label}]")
        if passage_id and passage_id not in cited:
            cited.append(passage_id)
    return cited


def _measure(summary: DebugSummary) -> None:
    g = summary.generation
    labels: dict[str, str | bool] = {
        conv.ATTR_PROMPT_VARIANT: summary.prompt_variant,
        conv.ATTR_CACHE_HIT: summary.cache_hit,
        conv.ATTR_DEGRADED: summary.degraded,
    }
    instruments.answers.add(1, labels)
    instruments.time_to_first_token.record(summary.time_to_first_token_ms / 1000, labels)
    instruments.latency.record(summary.latency_ms / 1000, labels)
    if not summary.cache_hit:
        for token_type, count in (
            (conv.GEN_AI_TOKEN_TYPE_INPUT, g.prompt_tokens),
            (conv.GEN_AI_TOKEN_TYPE_OUTPUT, g.completion_tokens),
        ):
            instruments.token_usage.record(
                count,
                {conv.ATTR_GEN_AI_RESPONSE_MODEL: g.model, conv.ATTR_GEN_AI_TOKEN_TYPE: token_type},
            )
