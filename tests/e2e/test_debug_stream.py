"""The vertical slice: a question goes in, grounded context and a streamed answer come out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from raildebug.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.processes import Stack

pytestmark = pytest.mark.e2e

QUESTION = "E73-B is raised when point P12 fails to lock after a throw. Why, and how do I fix it?"


def _debug(stack: Stack, **fields: Any) -> list[tuple[float, orchestrator_pb2.DebugEvent]]:
    stub = orchestrator_pb2_grpc.OrchestratorStub(stack.orchestrator.channel())
    started = time.monotonic()
    events = []
    for event in stub.Debug(orchestrator_pb2.DebugRequest(**fields), timeout=180):
        events.append((time.monotonic() - started, event))
    return events


def test_answer_streams_with_context_from_the_sample_corpus(
    stack: Stack, sample_corpus: Path
) -> None:
    events = _debug(stack, question=QUESTION, max_tokens=96, client_id="tests")
    kinds = [event.WhichOneof("event") for _, event in events]
    assert kinds[0] == "context"
    assert kinds[-1] == "summary"
    assert set(kinds[1:-1]) == {"delta"}
    assert kinds.count("delta") >= 5, "the answer must arrive as many small messages"

    context = events[0][1].context
    assert len(context.passages) == 5
    for passage in context.passages:
        assert (sample_corpus / passage.source).is_file(), passage.source
        assert passage.line_start >= 1 and passage.line_end >= passage.line_start
    sources = [p.source for p in context.passages]
    assert any("point" in s for s in sources), f"E73-B is a point error; got {sources}"

    summary = events[-1][1].summary
    assert summary.request_id
    assert summary.usage.prompt_tokens > 100
    assert 0 < summary.usage.completion_tokens <= 96
    assert summary.model == "gemma-3-270m", "served by its catalog name"
    assert summary.prompt_version == "rail_fix@1"
    assert summary.finish_reason in {"length", "stop", "eos"}
    assert not summary.degraded
    timings = summary.generation_timings
    assert timings.prefill_ms > 0 and timings.decode_ms > 0 and timings.total_ms > 0
    assert 0 < summary.time_to_first_token_ms < summary.latency_ms
    assert set(summary.cited_passage_ids) <= {p.id for p in context.passages}

    # Streaming, not buffering: the first delta reached us long before the last one did.
    delta_times = [at for at, event in events if event.WhichOneof("event") == "delta"]
    assert delta_times[-1] - delta_times[0] > 0.5 * timings.decode_ms / 1000


def test_feedback_is_recorded_for_an_answered_request(stack: Stack) -> None:
    events = _debug(
        stack, question="Track circuit shows occupied with no train present", max_tokens=16
    )
    request_id = events[-1][1].summary.request_id
    stub = orchestrator_pb2_grpc.OrchestratorStub(stack.orchestrator.channel())
    assert stub.Feedback(
        orchestrator_pb2.FeedbackRequest(request_id=request_id, score=1.0, comment="fixed it"),
        timeout=10,
    ).recorded

    with pytest.raises(grpc.RpcError) as unknown:
        stub.Feedback(orchestrator_pb2.FeedbackRequest(request_id="nope", score=1), timeout=10)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as bad_score:
        stub.Feedback(orchestrator_pb2.FeedbackRequest(request_id=request_id, score=3), timeout=10)
    assert bad_score.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_filters_restrict_the_context(stack: Stack) -> None:
    events = _debug(
        stack,
        question="lock timeout after throw",
        max_tokens=8,
        k=4,
        filter={"kinds": ["code"], "source_prefix": "src/"},
    )
    passages = events[0][1].context.passages
    assert passages, "code passages exist under src/"
    assert all(p.kind == "code" and p.source.startswith("src/") for p in passages)
