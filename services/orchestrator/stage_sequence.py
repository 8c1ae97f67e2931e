"""The Debug request as a sequence of named stages over one typed state.

Each stage reads and fills fields of `DebugState`, may stream events to the caller, and says
when it applies (a cached answer skips retrieval and generation, for example). Adding a stage,
such as a log analyzer or a human approval step, is adding one object to the list: the
`StageSequence` runs them in order, gives every stage its own trace span and knows nothing about
what the stages do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from raildebug.domain import GenerationOutcome
from raildebug.errors import DeadlineExceeded, RailDebugError
from raildebug.observability import conventions as conv
from services.orchestrator.models import (
    ChatTurns,
    ContextPassage,
    DebugEvent,
    DebugQuestion,
    DebugSummary,
)
from services.orchestrator.prompting import PromptTemplate


@dataclass
class DebugState:
    """Everything known about one request; stages fill it in order."""

    question: DebugQuestion
    request_id: str
    deadline: float  # absolute, time.monotonic() clock
    is_cancelled: Callable[[], bool]
    started: float = field(default_factory=time.monotonic)
    # select_prompt
    template: PromptTemplate | None = None
    prompt_variant: str = ""
    # cache_lookup
    cache_key: str = ""
    cached_deltas: list[str] | None = None
    # retrieval
    passages: list[ContextPassage] = field(default_factory=list)
    retrieval_ms: float = 0.0
    degraded_reason: str = ""
    # prompt
    prompt: str = ""
    chat: ChatTurns = ()
    grammar: str = ""
    # analysis
    answer_parts: list[str] = field(default_factory=list)
    generation: GenerationOutcome | None = None
    first_delta_at: float | None = None
    # response
    summary: DebugSummary | None = None

    @property
    def cache_hit(self) -> bool:
        return self.cached_deltas is not None

    @property
    def answer(self) -> str:
        return "".join(self.answer_parts)

    def remaining_s(self) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded("the request deadline passed before the answer was complete")
        return remaining

    def require_template(self) -> PromptTemplate:
        if self.template is None:
            raise RuntimeError("the select_prompt stage must run before this one")
        return self.template


class Stage(Protocol):
    name: str

    def applies(self, state: DebugState) -> bool:
        """False skips the stage for this request (no span, no events)."""
        ...

    def run(self, state: DebugState, span: Span) -> Iterator[DebugEvent]:
        """Advance `state`; yield events for the caller; put attributes on `span`."""
        ...


class StageSequence:
    """Runs stages in order inside one `debug.request` span, one child span per stage."""

    def __init__(self, stages: Sequence[Stage], tracer: trace.Tracer) -> None:
        names = [stage.name for stage in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique: {names}")
        self.stages = list(stages)
        self._tracer = tracer

    @property
    def names(self) -> list[str]:
        return [stage.name for stage in self.stages]

    def run(self, state: DebugState) -> Iterator[DebugEvent]:
        with self._tracer.start_as_current_span(
            "debug.request", attributes={conv.ATTR_REQUEST_ID: state.request_id}
        ) as request_span:
            for stage in self.stages:
                if not stage.applies(state):
                    continue
                with self._tracer.start_as_current_span(
                    f"debug.{stage.name}", record_exception=False, set_status_on_exception=False
                ) as span:
                    try:
                        yield from stage.run(state, span)
                    except RailDebugError as error:
                        span.set_status(Status(StatusCode.ERROR, str(error)))
                        span.set_attribute(conv.ATTR_ERROR_TYPE, type(error).__name__)
                        raise
            if state.summary is not None:
                request_span.set_attributes(summary_attributes(state.summary))


def summary_attributes(summary: DebugSummary) -> dict[str, AttributeValue]:
    g = summary.generation
    attributes: dict[str, AttributeValue] = {
        conv.ATTR_GEN_AI_RESPONSE_MODEL: g.model,
        conv.ATTR_GEN_AI_USAGE_INPUT_TOKENS: g.prompt_tokens,
        conv.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS: g.completion_tokens,
        conv.ATTR_GEN_AI_RESPONSE_FINISH_REASONS: [str(g.finish_reason)],
        conv.ATTR_PROMPT_VERSION: summary.prompt_version,
        conv.ATTR_PROMPT_VARIANT: summary.prompt_variant,
        conv.ATTR_CACHE_HIT: summary.cache_hit,
        conv.ATTR_DEGRADED: summary.degraded,
        conv.ATTR_DEBUG_DURATION: summary.latency_ms / 1000,
        conv.ATTR_DEBUG_TIME_TO_FIRST_TOKEN: summary.time_to_first_token_ms / 1000,
    }
    if summary.degraded_reason:
        attributes[conv.ATTR_DEGRADED_REASON] = summary.degraded_reason
    if summary.estimated_cost_usd is not None:
        attributes[conv.ATTR_COST_USD] = summary.estimated_cost_usd
    return attributes
