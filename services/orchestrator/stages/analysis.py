"""Analysis stage: the configured analyzer backend streams the answer."""

from __future__ import annotations

import time
from collections.abc import Iterator

from opentelemetry.trace import Span

from raildebug.domain import GenerationOutcome
from raildebug.errors import NotReady
from raildebug.observability import conventions as conv
from services.orchestrator.models import (
    DEFAULT_ANSWER_TOKENS,
    AnalysisInput,
    AnswerDelta,
    DebugEvent,
)
from services.orchestrator.ports import Analyzer
from services.orchestrator.stage_sequence import DebugState


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
            chat=state.chat,
            grammar=state.grammar,
        )
        span.set_attributes(
            {
                conv.ATTR_ANALYZER: self._analyzer.name,
                conv.ATTR_GEN_AI_REQUEST_MAX_TOKENS: work.max_tokens,
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
                conv.ATTR_GEN_AI_RESPONSE_MODEL: g.model,
                conv.ATTR_GEN_AI_USAGE_INPUT_TOKENS: g.prompt_tokens,
                conv.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS: g.completion_tokens,
                conv.ATTR_GEN_AI_RESPONSE_FINISH_REASONS: [str(g.finish_reason)],
                conv.ATTR_GENERATION_TIME_TO_FIRST_TOKEN: g.time_to_first_token_ms / 1000,
            }
        )
