"""Analysis stage: the configured analyzer backend streams the answer."""

from __future__ import annotations

import time
from collections.abc import Iterator

from opentelemetry.trace import Span

from raildebug.domain import GenerationOutcome
from raildebug.errors import NotReady
from services.orchestrator.graph import DebugState
from services.orchestrator.models import (
    DEFAULT_ANSWER_TOKENS,
    AnalysisInput,
    AnswerDelta,
    DebugEvent,
)
from services.orchestrator.ports import Analyzer


class Analyze:
    name = "analysis"

    def __init__(self, analyzer: Analyzer) -> None:
        self._analyzer = analyzer

    def applies(self, state: DebugState) -> bool:
        return not state.cache_hit

    def run(self, state: DebugState, span: Span) -> Iterator[DebugEvent]:
        template = state.require_template()
        work = AnalysisInput(
            question=state.question,
            passages=state.passages,
            prompt=state.prompt,
            stop=template.stop,
            max_tokens=state.question.max_tokens or DEFAULT_ANSWER_TOKENS,
        )
        span.set_attributes(
            {
                "raildebug.analyzer": self._analyzer.name,
                "gen_ai.request.max_tokens": work.max_tokens,
            }
        )
        for item in self._analyzer.analyze(
            work,
            timeout_s=state.remaining_s(),
            request_id=state.request_id,
            is_cancelled=state.is_cancelled,
        ):
            if isinstance(item, GenerationOutcome):
                state.generation = item
                continue
            state.first_delta_at = state.first_delta_at or time.monotonic()
            state.answer_parts.append(item)
            yield AnswerDelta(item)
        g = state.generation
        if g is None:
            raise NotReady("the analyzer ended the stream without a result; retry the request")
        span.set_attributes(
            {
                "gen_ai.response.model": g.model,
                "gen_ai.usage.input_tokens": g.prompt_tokens,
                "gen_ai.usage.output_tokens": g.completion_tokens,
                "raildebug.finish_reason": g.finish_reason,
                "raildebug.generation.ttft_ms": g.time_to_first_token_ms,
            }
        )
