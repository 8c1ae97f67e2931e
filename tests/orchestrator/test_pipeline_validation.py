"""Request limits are enforced before any upstream call, with messages that say what to do."""

import pytest

from raildebug.errors import InvalidRequest
from services.orchestrator.models import (
    MAX_QUESTION_CHARS,
    MAX_SNIPPET_CHARS,
    ContextPassage,
    DebugQuestion,
)
from services.orchestrator.stages.intake import validate_question
from services.orchestrator.stages.response import cited_ids as _cited_ids


@pytest.mark.parametrize(
    ("question", "message"),
    [
        (DebugQuestion(question="   "), "question is empty"),
        (DebugQuestion(question="x" * (MAX_QUESTION_CHARS + 1)), "limit is 4000"),
        (DebugQuestion(question="q", error_log="e" * (MAX_SNIPPET_CHARS + 1)), "error_log"),
        (DebugQuestion(question="q", code_snippet="c" * (MAX_SNIPPET_CHARS + 1)), "code_snippet"),
        (DebugQuestion(question="q", k=21), "k must be 0..20"),
        (DebugQuestion(question="q", max_tokens=5000), "max_tokens must be"),
    ],
)
def test_bad_questions_are_rejected_with_actionable_messages(
    question: DebugQuestion, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        validate_question(question)


def test_valid_question_passes() -> None:
    validate_question(DebugQuestion(question="E73-B on P12", k=20, max_tokens=2048))


def test_citations_map_labels_to_passage_ids_once_each_in_order() -> None:
    passages = [
        ContextPassage(
            id=f"id{n}",
            text="",
            source="s",
            line_start=1,
            line_end=1,
            title="",
            kind="doc",
            score=0.0,
            label=f"[{n}]",
        )
        for n in (1, 2, 3)
    ]
    answer = "Raise pm_lock_timeout_ms [2]; see also [1] and again [2]. Not [7]."
    assert _cited_ids(answer, passages) == ["id2", "id1"]
