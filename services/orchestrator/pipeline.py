"""The Debug pipeline: validate → retrieve → build prompt → generate → summarise.

Retrieval failures degrade the answer (no context, `degraded=True`) instead of failing it;
generation failures before the first token raise NotReady (UNAVAILABLE to the caller).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from raildebug.errors import DeadlineExceeded, InvalidRequest, NotReady, Overloaded
from raildebug.telemetry import get_logger
from services.orchestrator.models import (
    DEFAULT_ANSWER_TOKENS,
    DEFAULT_CONTEXT_K,
    MAX_ANSWER_TOKENS,
    MAX_CONTEXT_K,
    MAX_QUESTION_CHARS,
    MAX_SNIPPET_CHARS,
    AnalysisInput,
    AnswerDelta,
    ContextEvent,
    ContextPassage,
    DebugEvent,
    DebugQuestion,
    DebugSummary,
    GenerationStats,
)
from services.orchestrator.ports import Analyzer, PassageSource
from services.orchestrator.prompting import PromptTemplate

log = get_logger(__name__)

_CITATION = re.compile(r"\[(\d{1,2})\]")


@dataclass(frozen=True)
class DeadlinePolicy:
    retrieval_share: float = 0.2  # of the remaining time
    max_retrieval_s: float = 5.0


@dataclass(frozen=True)
class AnsweredRequest:
    """What is kept of a finished answer, so feedback can be linked to it."""

    question: DebugQuestion
    passages: list[ContextPassage]
    answer: str
    summary: DebugSummary


class DebugPipeline:
    def __init__(
        self,
        passages: PassageSource,
        analyzer: Analyzer,
        template: PromptTemplate,
        deadlines: DeadlinePolicy | None = None,
        on_answered: Callable[[AnsweredRequest], None] | None = None,
    ) -> None:
        self._passages = passages
        self._analyzer = analyzer
        self._template = template
        self._deadlines = deadlines or DeadlinePolicy()
        self._on_answered = on_answered

    def run(
        self,
        question: DebugQuestion,
        deadline: float,
        is_cancelled: Callable[[], bool] = lambda: False,
    ) -> Iterator[DebugEvent]:
        """Stream the context, the answer deltas, then one summary.

        `deadline` is absolute, on the time.monotonic() clock.
        """
        validate_question(question)
        started = time.monotonic()
        request_id = uuid.uuid4().hex
        passages, retrieval_ms, degraded_reason = self._retrieve(question, deadline)
        passages = self._template.fit_passages(passages)
        yield ContextEvent(passages=passages, retrieval_ms=retrieval_ms)

        prompt = self._template.render(question, passages)
        answer: list[str] = []
        stats: GenerationStats | None = None
        first_delta_at: float | None = None
        work = AnalysisInput(
            question=question,
            passages=passages,
            prompt=prompt,
            stop=self._template.stop,
            max_tokens=question.max_tokens or DEFAULT_ANSWER_TOKENS,
        )
        for item in self._analyzer.analyze(
            work,
            timeout_s=_remaining(deadline),
            request_id=request_id,
            is_cancelled=is_cancelled,
        ):
            if isinstance(item, GenerationStats):
                stats = item
                continue
            first_delta_at = first_delta_at or time.monotonic()
            answer.append(item)
            yield AnswerDelta(item)
        if stats is None:
            raise NotReady("inference ended the stream without a result; retry the request")

        ended = time.monotonic()
        text = "".join(answer)
        summary = DebugSummary(
            request_id=request_id,
            generation=stats,
            latency_ms=(ended - started) * 1000,
            time_to_first_token_ms=((first_delta_at or ended) - started) * 1000,
            prompt_version=self._template.ref,
            cited_passage_ids=_cited_ids(text, passages),
            degraded=bool(degraded_reason),
            degraded_reason=degraded_reason,
        )
        log.info(
            "answered",
            request_id=request_id,
            client_id=question.client_id,
            passages=len(passages),
            finish=stats.finish_reason,
            completion_tokens=stats.completion_tokens,
            degraded=summary.degraded,
            latency_ms=round(summary.latency_ms, 1),
        )
        if self._on_answered is not None:
            self._on_answered(AnsweredRequest(question, passages, text, summary))
        yield summary

    def _retrieve(
        self, question: DebugQuestion, deadline: float
    ) -> tuple[list[ContextPassage], float, str]:
        """Passages, retrieval time, and why retrieval was skipped ("" when it was not)."""
        budget = min(
            self._deadlines.max_retrieval_s, _remaining(deadline) * self._deadlines.retrieval_share
        )
        started = time.monotonic()
        query = "\n".join(
            part for part in (question.question, question.error_log[-1000:]) if part.strip()
        )
        try:
            passages = self._passages.search(
                query, question.k or DEFAULT_CONTEXT_K, question.filter, timeout_s=budget
            )
        except (NotReady, DeadlineExceeded, Overloaded) as error:
            log.warning("retrieval degraded", error=str(error))
            return [], (time.monotonic() - started) * 1000, f"retrieval skipped: {error}"
        return passages, (time.monotonic() - started) * 1000, ""


def validate_question(question: DebugQuestion) -> None:
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


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlineExceeded("the request deadline passed before the answer was complete")
    return remaining


def _cited_ids(answer: str, passages: list[ContextPassage]) -> list[str]:
    by_label = {p.label: p.id for p in passages}
    cited: list[str] = []
    for match in _CITATION.finditer(answer):
        passage_id = by_label.get(f"[{match.group(1)}]")
        if passage_id and passage_id not in cited:
            cited.append(passage_id)
    return cited
