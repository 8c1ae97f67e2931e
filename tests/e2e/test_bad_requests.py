"""Bad requests get INVALID_ARGUMENT with a message a person can act on; servers keep serving."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from raildebug.v1 import (
    inference_pb2,
    inference_pb2_grpc,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    retriever_pb2,
    retriever_pb2_grpc,
)
from tests.support.processes import Stack

pytestmark = pytest.mark.e2e


def _status(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as failure:
        result = call()
        if hasattr(result, "__iter__") and not hasattr(result, "ListFields"):
            list(result)
    return failure.value.code(), failure.value.details()


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"question": ""}, "question is empty"),
        ({"question": "x" * 4001}, "limit is 4000"),
        ({"question": "E73-B", "k": 50}, "k must be 0..20"),
        ({"question": "E73-B", "filter": {"metadata": {"colour": "red"}}}, "subsystem"),
        ({"question": "E73-B", "filter": {"kinds": ["video"]}}, "video"),
    ],
)
def test_orchestrator_rejects_bad_questions(
    stack: Stack, request_fields: dict[str, Any], message: str
) -> None:
    stub = orchestrator_pb2_grpc.OrchestratorStub(stack.orchestrator.channel())
    code, details = _status(
        lambda: stub.Debug(orchestrator_pb2.DebugRequest(**request_fields), timeout=30)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in details


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"query": "   ", "k": 5}, "query"),
        ({"query": "E73-B", "k": 101}, "k"),
        ({"query": "E73-B", "alpha": 1.5}, "alpha"),
        ({"query": "E73-B", "filter": {"metadata": {"colour": "red"}}}, "colour"),
    ],
)
def test_retriever_rejects_bad_searches(
    stack: Stack, request_fields: dict[str, Any], message: str
) -> None:
    stub = retriever_pb2_grpc.RetrieverStub(stack.retriever.channel())
    code, details = _status(
        lambda: stub.Search(retriever_pb2.SearchRequest(**request_fields), timeout=30)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in details


def test_inference_rejects_oversize_prompt_and_bad_sampling(stack: Stack) -> None:
    stub = inference_pb2_grpc.InferenceStub(stack.inference.channel())
    huge = "interlocking " * 20_000  # far beyond any configured context
    code, details = _status(
        lambda: stub.Generate(inference_pb2.GenerateRequest(prompt=huge, max_tokens=8), timeout=30)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "context holds" in details
    code, details = _status(
        lambda: stub.Generate(
            inference_pb2.GenerateRequest(
                prompt="hi", sampling=inference_pb2.SamplingParams(temperature=5.0)
            ),
            timeout=30,
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "temperature" in details
    code, details = _status(
        lambda: stub.Generate(inference_pb2.GenerateRequest(prompt=""), timeout=30)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_services_keep_serving_after_bad_requests(stack: Stack) -> None:
    test_orchestrator_rejects_bad_questions(stack, {"question": ""}, "question is empty")
    stub = orchestrator_pb2_grpc.OrchestratorStub(stack.orchestrator.channel())
    events = list(
        stub.Debug(orchestrator_pb2.DebugRequest(question="E12-A", max_tokens=4), timeout=120)
    )
    assert events[-1].WhichOneof("event") == "summary"
    retriever = retriever_pb2_grpc.RetrieverStub(stack.retriever.channel())
    assert retriever.Stats(retriever_pb2.StatsRequest(), timeout=10).passages > 0


def test_deleting_an_unknown_source_removes_nothing(stack: Stack) -> None:
    stub = retriever_pb2_grpc.RetrieverStub(stack.retriever.channel())
    before = stub.Stats(retriever_pb2.StatsRequest(), timeout=10).passages
    response = stub.DeleteSource(retriever_pb2.DeleteSourceRequest(source="no/such.md"), timeout=10)
    assert response.passages_deleted == 0
    assert stub.Stats(retriever_pb2.StatsRequest(), timeout=10).passages == before
