"""Debug and Feedback bound every caller-supplied id and filter; a caller's bad filter is never
turned into a degraded answer.

Before: a 1 MB client_id was logged, traced and stored; an oversized filter went to the
retriever, whose echoing error outgrew the gRPC status limit, so the orchestrator saw
RESOURCE_EXHAUSTED and answered OK with degraded=true instead of INVALID_ARGUMENT.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from opentelemetry.trace import INVALID_SPAN

from raildebug.domain import PassageFilter
from raildebug.errors import InvalidRequest, NotReady
from services.orchestrator.feedback import FeedbackLog
from services.orchestrator.models import ContextPassage, DebugQuestion, FeedbackEntry
from services.orchestrator.stage_sequence import DebugState
from services.orchestrator.stages.intake import validate_question
from services.orchestrator.stages.retrieval import DeadlinePolicy, Retrieve

MEGABYTE = "x" * 1_000_000


@pytest.mark.parametrize(
    ("question", "message"),
    [
        (DebugQuestion(question="E73-B", client_id=MEGABYTE), "client_id is 1000000 characters"),
        (DebugQuestion(question="E73-B", client_id="ci\0bot"), "client_id .* control characters"),
        (DebugQuestion(question="E73-B", session_id="s" * 129), "session_id is 129 characters"),
        (
            DebugQuestion(question="E73-B", filter=PassageFilter(metadata={"subsystem": MEGABYTE})),
            r"filter\.metadata\['subsystem'\] is 1000000 characters",
        ),
        (
            DebugQuestion(question="E73-B", filter=PassageFilter(source_prefix=MEGABYTE)),
            r"filter\.source_prefix is 1000000 characters",
        ),
        (
            DebugQuestion(question="E73-B", filter=PassageFilter(kinds=("doc",) * 17)),
            r"filter\.kinds has 17 values",
        ),
    ],
)
def test_unbounded_ids_and_filters_are_refused(question: DebugQuestion, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as refused:
        validate_question(question)
    assert len(str(refused.value)) < 300


def test_ordinary_ids_pass() -> None:
    validate_question(DebugQuestion(question="E73-B", client_id="cli", session_id="s-42:7"))


class _Refusing:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def search(
        self, query: str, k: int, passage_filter: PassageFilter, timeout_s: float
    ) -> list[ContextPassage]:
        raise self.error


def _state() -> DebugState:
    return DebugState(DebugQuestion(question="E73-B"), "r1", time.monotonic() + 30, lambda: False)


def test_an_invalid_request_to_the_retriever_is_the_callers_error_not_degradation() -> None:
    stage = Retrieve(_Refusing(InvalidRequest("retriever: unknown kind")), DeadlinePolicy(), 0.5)
    state = _state()
    with pytest.raises(InvalidRequest, match="unknown kind"):
        list(stage.run(state, INVALID_SPAN))
    assert not state.degraded_reason


def test_an_unavailable_retriever_still_degrades() -> None:
    stage = Retrieve(_Refusing(NotReady("retriever unavailable")), DeadlinePolicy(), 0.5)
    state = _state()
    list(stage.run(state, INVALID_SPAN))
    assert state.degraded_reason.startswith("retrieval skipped")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (FeedbackEntry(request_id=MEGABYTE, score=1.0), "request_id is 1000000 characters"),
        (FeedbackEntry(request_id="r\0", score=1.0), "request_id .* control characters"),
        (FeedbackEntry(request_id="r1", score=1.0, client_id=MEGABYTE), "client_id is 1000000"),
        (FeedbackEntry(request_id="r1", score=math.nan), r"score must be in \[-1, 1\]"),
        (FeedbackEntry(request_id="r1", score=math.inf), r"score must be in \[-1, 1\]"),
    ],
)
def test_feedback_ids_and_scores_are_bounded(
    tmp_path: Path, entry: FeedbackEntry, message: str
) -> None:
    log = FeedbackLog(tmp_path / "feedback.sqlite")
    with pytest.raises(InvalidRequest, match=message):
        log.record_feedback(entry)
