"""First stages: reject bad input, then choose the prompt (and A/B variant) to serve."""

from __future__ import annotations

from collections.abc import Iterator

from opentelemetry.trace import Span

from raildebug.errors import InvalidRequest
from raildebug.limits import (
    MAX_CLIENT_ID_CHARS,
    MAX_SESSION_ID_CHARS,
    check_identifier,
    check_passage_filter,
)
from raildebug.observability import conventions as conv
from services.orchestrator.experiments import PromptExperiment
from services.orchestrator.models import (
    DEFAULT_ANSWER_TOKENS,
    DEFAULT_CONTEXT_K,
    MAX_ANSWER_TOKENS,
    MAX_CONTEXT_K,
    MAX_QUESTION_CHARS,
    MAX_SNIPPET_CHARS,
    DebugEvent,
    DebugQuestion,
)
from services.orchestrator.prompt_sources import PromptSource
from services.orchestrator.stage_sequence import DebugState


def validate_question(question: DebugQuestion) -> None:
    check_identifier("client_id", question.client_id, MAX_CLIENT_ID_CHARS)
    check_identifier("session_id", question.session_id, MAX_SESSION_ID_CHARS)
    if not question.question.strip():
        raise InvalidRequest("question is empty: describe the failure you are debugging")
    if len(question.question) > MAX_QUESTION_CHARS:
        raise InvalidRequest(
            f"question is {len(question.question)} characters; the limit is "
            f"{MAX_QUESTION_CHARS}: move logs and code into error_log / code_snippet"
        )
    for name, value in (("code_snippet", question.code_snippet), ("error_log", question.error_log)):
        if len(value) > MAX_SNIPPET_CHARS:
            raise InvalidRequest(
                f"{name} is {len(value)} characters; the limit is {MAX_SNIPPET_CHARS}: "
                "send the relevant part only"
            )
    if not 0 <= question.k <= MAX_CONTEXT_K:
        raise InvalidRequest(f"k must be 0..{MAX_CONTEXT_K} (0 means {DEFAULT_CONTEXT_K})")
    if not 0 <= question.max_tokens <= MAX_ANSWER_TOKENS:
        raise InvalidRequest(
            f"max_tokens must be 0..{MAX_ANSWER_TOKENS} (0 means {DEFAULT_ANSWER_TOKENS})"
        )
    # Which kinds and metadata keys exist is the retriever's to say; the sizes are checked
    # here, so that an oversized filter is the caller's error and never a degraded answer.
    check_passage_filter(question.filter)


class Validate:
    name = "validate"

    def applies(self, state: DebugState) -> bool:
        return True

    def run(self, state: DebugState, span: Span) -> Iterator[DebugEvent]:
        validate_question(state.question)
        span.set_attribute(conv.ATTR_CLIENT_ID, state.question.client_id)
        return iter(())


class SelectPrompt:
    """Resolves the label this caller is assigned to into a concrete template version."""

    name = "select_prompt"

    def __init__(self, prompts: PromptSource, prompt_name: str, experiment: PromptExperiment):
        self._prompts = prompts
        self._prompt_name = prompt_name
        self._experiment = experiment

    def applies(self, state: DebugState) -> bool:
        return True

    def run(self, state: DebugState, span: Span) -> Iterator[DebugEvent]:
        q = state.question
        label = self._experiment.assign(q.session_id or q.client_id or state.request_id)
        state.template = self._prompts.resolve(self._prompt_name, label)
        state.prompt_variant = label
        span.set_attributes(
            {conv.ATTR_PROMPT_VERSION: state.template.ref, conv.ATTR_PROMPT_VARIANT: label}
        )
        return iter(())
