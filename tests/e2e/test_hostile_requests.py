"""Requests built to break a service get the right status, and every service stays up.

Regression tests of the hardening issue, against the real processes: a grammar that can never
match used to abort the inference process (llama.cpp's "Unexpected empty grammar stack");
schemas the converter rejects were UNKNOWN with Python exception text; bodies that are not the
message were INTERNAL; NaN sampling values and unknown enum values were accepted; echoed
values outgrew the gRPC status and, through the orchestrator, turned a bad filter into an OK
answer with degraded=true; ids and sources had no bounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from raildebug.errors import MAX_MESSAGE_BYTES
from raildebug.v1 import (
    common_pb2,
    inference_pb2,
    inference_pb2_grpc,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    retriever_pb2,
    retriever_pb2_grpc,
)
from tests.support.processes import ServiceProcess, Stack

pytestmark = pytest.mark.e2e

MEGABYTE = "x" * 1_000_000


def _status(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as failure:
        result = call()
        if hasattr(result, "__iter__") and not hasattr(result, "ListFields"):
            list(result)
    return failure.value.code(), str(failure.value.details())


def _assert_alive(service: ServiceProcess) -> None:
    assert service.process.poll() is None, (
        f"{service.name} died:\n{service.log_path.read_text()[-3000:]}"
    )
    health = health_pb2_grpc.HealthStub(service.channel())
    reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def _generate(stack: Stack, **fields: Any) -> tuple[grpc.StatusCode, str]:
    stub = inference_pb2_grpc.InferenceStub(stack.inference.channel())
    request = inference_pb2.GenerateRequest(prompt="Point P12:", max_tokens=4, **fields)
    return _status(lambda: stub.Generate(request, timeout=60))


def test_a_grammar_that_can_never_match_is_refused_and_inference_survives(stack: Stack) -> None:
    code, details = _generate(stack, grammar="root ::= [z-a]")
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert "empty character range" in details
    _assert_alive(stack.inference)
    stub = inference_pb2_grpc.InferenceStub(stack.inference.channel())
    events = list(
        stub.Generate(
            inference_pb2.GenerateRequest(
                prompt="Point P12:", max_tokens=2, grammar='root ::= "ok"'
            ),
            timeout=60,
        )
    )
    assert "".join(e.delta for e in events) == "ok"


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ('{"type":"nonsense"}', "Unrecognized schema"),
        ('{"type":"string","pattern":"("}', "Pattern must start"),
        ('{"$ref":"#/$defs/missing"}', "does not support"),
        ('{"type":"string","minLength":100000000}', "minLength must be an integer from 0 to"),
    ],
)
def test_unconvertible_json_schemas_are_invalid_argument(
    stack: Stack, schema: str, message: str
) -> None:
    code, details = _generate(stack, json_schema=schema)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert message in details
    assert "Traceback" not in details and "Exception calling application" not in details


RPCS = [
    ("orchestrator", "/raildebug.v1.Orchestrator/Debug", "unary_stream"),
    ("orchestrator", "/raildebug.v1.Orchestrator/Feedback", "unary_unary"),
    ("retriever", "/raildebug.v1.Retriever/Search", "unary_unary"),
    ("retriever", "/raildebug.v1.Retriever/Ingest", "stream_unary"),
    ("retriever", "/raildebug.v1.Retriever/DeleteSource", "unary_unary"),
    ("retriever", "/raildebug.v1.Retriever/Stats", "unary_unary"),
    ("inference", "/raildebug.v1.Inference/Generate", "unary_stream"),
    ("inference", "/raildebug.v1.Inference/Info", "unary_unary"),
]


@pytest.mark.parametrize(("service", "method", "kind"), RPCS)
def test_a_body_that_is_not_the_message_is_invalid_argument(
    stack: Stack, service: str, method: str, kind: str
) -> None:
    channel = getattr(stack, service).channel()
    call = getattr(channel, kind)(method)
    body = b"\xff\xff\xff\xff"  # not protobuf: a corrupt tag
    code, details = _status(
        lambda: call(iter([body]) if kind.startswith("stream") else body, timeout=30)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert "is not a valid raildebug.v1." in details
    _assert_alive(getattr(stack, service))


def test_a_string_field_with_invalid_utf8_is_invalid_argument(stack: Stack) -> None:
    search = stack.retriever.channel().unary_unary("/raildebug.v1.Retriever/Search")
    code, details = _status(lambda: search(b"\x0a\x02\xc3\x28", timeout=30))  # query = C3 28
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "UTF-8" in details


@pytest.mark.parametrize("penalty", [math.nan, math.inf, -math.inf])
def test_non_finite_repeat_penalty_is_invalid_argument(stack: Stack, penalty: float) -> None:
    code, details = _generate(stack, sampling=inference_pb2.SamplingParams(repeat_penalty=penalty))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "repeat_penalty" in details


def test_unknown_enum_values_and_nan_scores_are_invalid_argument(stack: Stack) -> None:
    retriever = retriever_pb2_grpc.RetrieverStub(stack.retriever.channel())
    request = retriever_pb2.SearchRequest(query="E73-B")
    request.fusion = 42  # type: ignore[assignment]  # a value this server does not know
    code, details = _status(lambda: retriever.Search(request, timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown fusion value 42" in details
    orchestrator = orchestrator_pb2_grpc.OrchestratorStub(stack.orchestrator.channel())
    code, details = _status(
        lambda: orchestrator.Feedback(
            orchestrator_pb2.FeedbackRequest(request_id="r1", score=math.nan), timeout=30
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "score" in details


def test_a_huge_invalid_filter_is_invalid_argument_with_a_short_message(stack: Stack) -> None:
    """Before: the retriever echoed the whole key, its status outgrew the metadata limit, the
    orchestrator saw RESOURCE_EXHAUSTED ("Stream removed") and answered degraded=true."""
    huge = common_pb2.PassageFilter(metadata={MEGABYTE: "red"})
    retriever = retriever_pb2_grpc.RetrieverStub(stack.retriever.channel())
    code, details = _status(
        lambda: retriever.Search(
            retriever_pb2.SearchRequest(query="E73-B", filter=huge), timeout=30
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert len(details.encode()) <= MAX_MESSAGE_BYTES
    orchestrator = orchestrator_pb2_grpc.OrchestratorStub(stack.orchestrator.channel())
    for filter_ in (
        huge,
        common_pb2.PassageFilter(kinds=["video" * 200_000]),
        common_pb2.PassageFilter(source_prefix=MEGABYTE),
    ):
        code, details = _status(
            lambda f=filter_: orchestrator.Debug(  # type: ignore[misc]
                orchestrator_pb2.DebugRequest(question="E73-B", max_tokens=4, filter=f),
                timeout=60,
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
        assert len(details.encode()) <= MAX_MESSAGE_BYTES
    _assert_alive(stack.orchestrator)


def test_ids_and_sources_are_bounded(stack: Stack) -> None:
    orchestrator = orchestrator_pb2_grpc.OrchestratorStub(stack.orchestrator.channel())
    for fields in ({"client_id": MEGABYTE}, {"client_id": "a\0b"}, {"session_id": MEGABYTE}):
        code, details = _status(
            lambda f=fields: orchestrator.Debug(  # type: ignore[misc]
                orchestrator_pb2.DebugRequest(question="E73-B", max_tokens=4, **f), timeout=60
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (fields.keys(), code)
        assert len(details) < 300
    code, details = _generate(stack, request_id=MEGABYTE)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id is 1000000 characters" in details
    retriever = retriever_pb2_grpc.RetrieverStub(stack.retriever.channel())
    before = retriever.Stats(retriever_pb2.StatsRequest(), timeout=10).passages
    summary = retriever.Ingest(
        iter(
            [
                retriever_pb2.IngestDocument(source="docs/\0evil.md", content="E73-B"),
                retriever_pb2.IngestDocument(source=MEGABYTE, content="E73-B"),
                retriever_pb2.IngestDocument(
                    source="docs/meta.md", content="E73-B", metadata={"subsystem": "a\0b"}
                ),
            ]
        ),
        timeout=60,
    )
    assert summary.documents_written == 0 and len(summary.errors) == 3
    assert all(len(e.source) <= 1025 and len(e.message) < 300 for e in summary.errors)
    assert retriever.Stats(retriever_pb2.StatsRequest(), timeout=10).passages == before
    code, _ = _status(
        lambda: retriever.DeleteSource(
            retriever_pb2.DeleteSourceRequest(source="docs/\0evil.md"), timeout=10
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    for service in (stack.orchestrator, stack.retriever, stack.inference):
        _assert_alive(service)
