"""Prompt stage: fit the passages to the template's budget, show them, render the prompt."""

from __future__ import annotations

from collections.abc import Iterator

from opentelemetry.trace import Span

from raildebug.observability import conventions as conv
from services.orchestrator.grounding import unknown_identifiers
from services.orchestrator.models import ContextEvent, DebugEvent
from services.orchestrator.ports import TokenCounter
from services.orchestrator.stage_sequence import DebugState


class BuildPrompt:
    name = "prompt"

    def __init__(self, tokens: TokenCounter | None = None) -> None:
        self._tokens = tokens

    def applies(self, state: DebugState) -> bool:
        return not state.cache_hit

    def run(self, state: DebugState, span: Span) -> Iterator[DebugEvent]:
        template = state.require_template()
        unknown = unknown_identifiers(state.question.question, state.passages)
        state.passages = template.fit_passages(
            state.passages, self._tokens, timeout_s=min(state.remaining_s(), 5.0)
        )
        yield ContextEvent(passages=state.passages, retrieval_ms=state.retrieval_ms)
        state.prompt = template.render(state.question, state.passages, unknown)
        state.chat = template.render_chat(state.question, state.passages, unknown)
        state.grammar = template.render_grammar(state.question, state.passages, unknown)
        chars = sum(len(content) for _, content in state.chat) or len(state.prompt)
        span.set_attributes(
            {
                conv.ATTR_PROMPT_VERSION: template.ref,
                conv.ATTR_PROMPT_VARIANT: state.prompt_variant,
                conv.ATTR_PROMPT_CHARS: chars,
                conv.ATTR_PROMPT_PASSAGES: len(state.passages),
                conv.ATTR_PROMPT_UNKNOWN_IDENTIFIERS: unknown,
            }
        )
