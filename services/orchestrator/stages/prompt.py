"""Prompt stage: fit the passages to the template's budget, show them, render the prompt."""

from __future__ import annotations

from collections.abc import Iterator

from opentelemetry.trace import Span

from services.orchestrator.graph import DebugState
from services.orchestrator.models import ContextEvent, DebugEvent


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
                "raildebug.prompt.version": template.ref,
                "raildebug.prompt.variant": state.prompt_variant,
                "raildebug.prompt.chars": len(state.prompt),
                "raildebug.prompt.passages": len(state.passages),
            }
        )
