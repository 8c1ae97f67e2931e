"""Prompt stage: fit the passages to the template's budget, show them, render the prompt."""

from __future__ import annotations

from collections.abc import Iterator

from opentelemetry.trace import Span

from raildebug.observability import conventions as conv
from services.orchestrator.models import ContextEvent, DebugEvent
from services.orchestrator.stage_sequence import DebugState


class BuildPrompt:
    name = "prompt"

    def applies(self, state: DebugState) -> bool:
        return not state.cache_hit

    def run(self, state: DebugState, span: Span) -> Iterator[DebugEvent]:
        template = state.require_template()
        state.passages = template.fit_passages(state.passages)
        yield ContextEvent(passages=state.passages, retrieval_ms=state.retrieval_ms)
        state.prompt = template.render(state.question, state.passages)
        span.set_attributes(
            {
                conv.ATTR_PROMPT_VERSION: template.ref,
                conv.ATTR_PROMPT_VARIANT: state.prompt_variant,
                conv.ATTR_PROMPT_CHARS: len(state.prompt),
                conv.ATTR_PROMPT_PASSAGES: len(state.passages),
            }
        )
