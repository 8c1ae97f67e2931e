"""Traces in a real Jaeger: the three services as separate processes export OTLP, and the trace is
read back through Jaeger's query API (request → retrieval → prompt → analysis → response)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raildebug.observability import conventions as conv
from raildebug.v1 import orchestrator_pb2, orchestrator_pb2_grpc, retriever_pb2, retriever_pb2_grpc
from tests.support.jaeger import JaegerServer, jaeger_server, tags
from tests.support.processes import ServiceProcess, StartService

pytestmark = pytest.mark.e2e

INGESTED = ("docs/errors-points.md", "docs/troubleshooting-points.md")


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JaegerServer]:
    with jaeger_server(tmp_path_factory.mktemp("jaeger")) as server:
        yield server


@pytest.fixture(scope="module")
def traced_orchestrator(
    jaeger: JaegerServer, start_service: StartService, sample_corpus: Path
) -> ServiceProcess:
    """Retriever, inference and orchestrator processes exporting to `jaeger`."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp_endpoint)
        env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        env.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # ms: export soon after a span ends
        retriever = start_service("retriever")
        inference = start_service("inference")
        orchestrator = start_service(
            "orchestrator",
            retriever_address=retriever.address,
            inference_address=inference.address,
            price_table='{"gemma-3-270m": [0.5, 1.5]}',
        )
    documents = [
        retriever_pb2.IngestDocument(source=s, content=(sample_corpus / s).read_text())
        for s in INGESTED
    ]
    stub = retriever_pb2_grpc.RetrieverStub(retriever.channel())
    assert stub.Ingest(iter(documents), timeout=300).documents_written == len(INGESTED)
    return orchestrator


def traceparent() -> tuple[str, tuple[tuple[str, str]]]:
    """A fresh W3C trace context: the caller knows the trace id to look up in Jaeger."""
    trace_id = secrets.token_hex(16)
    return trace_id, (("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01"),)


def test_one_trace_across_the_three_processes_is_read_back_from_jaeger(
    jaeger: JaegerServer, traced_orchestrator: ServiceProcess
) -> None:
    stub = orchestrator_pb2_grpc.OrchestratorStub(traced_orchestrator.channel())
    trace_id, metadata = traceparent()
    request = orchestrator_pb2.DebugRequest(
        question="E73-B when point P12 fails to lock. Why?", max_tokens=12, k=3
    )
    events = list(stub.Debug(request, timeout=120, metadata=metadata))
    summary = events[-1].summary
    assert summary.request_id

    stages = {"debug.request", "debug.retrieval", "debug.prompt", "debug.analysis"}
    upstream = {"/raildebug.v1.Retriever/Search", "/raildebug.v1.Inference/Generate"}
    trace = jaeger.wait_for_spans(trace_id, stages | upstream | {"debug.response"})
    spans = trace["spans"]
    by_id = {s["spanID"]: s for s in spans}
    by_name: dict[str, dict[str, Any]] = {s["operationName"]: s for s in spans}
    service_of = {pid: p["serviceName"] for pid, p in trace["processes"].items()}

    def parent(name: str) -> str:
        references = [r for r in by_name[name]["references"] if r["refType"] == "CHILD_OF"]
        assert references, f"{name} has no parent in the trace"
        return str(by_id[references[0]["spanID"]]["operationName"])

    def service(name: str) -> str:
        return str(service_of[by_name[name]["processID"]])

    # One trace, three processes, the stage hierarchy under the request.
    assert {service(n) for n in stages} == {"raildebug-orchestrator"}
    assert service("/raildebug.v1.Retriever/Search") == "raildebug-retriever"
    assert service("/raildebug.v1.Inference/Generate") == "raildebug-inference"
    assert parent("debug.request") == "/raildebug.v1.Orchestrator/Debug"
    for stage in ("debug.retrieval", "debug.prompt", "debug.analysis", "debug.response"):
        assert parent(stage) == "debug.request", stage
    assert parent(parent("/raildebug.v1.Retriever/Search")) == "debug.retrieval"
    assert parent(parent("/raildebug.v1.Inference/Generate")) == "debug.analysis"

    # What an engineer looks for on the spans.
    analysis = tags(by_name["debug.analysis"])
    assert analysis[conv.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS] == summary.usage.completion_tokens
    assert analysis[conv.ATTR_GEN_AI_RESPONSE_MODEL] == "gemma-3-270m"  # served by catalog name
    assert tags(by_name["debug.prompt"])[conv.ATTR_PROMPT_VERSION] == "rail_fix@1"
    assert tags(by_name["debug.retrieval"])[conv.ATTR_RETRIEVAL_ALPHA] == 0.5
    top = tags(by_name["debug.request"])
    assert top[conv.ATTR_GEN_AI_USAGE_INPUT_TOKENS] == summary.usage.prompt_tokens
    assert top[conv.ATTR_COST_USD] == pytest.approx(summary.estimated_cost_usd)
    assert summary.estimated_cost_usd > 0

    # Feedback arrives later, in its own request: its span carries the score and the version.
    feedback_trace, metadata = traceparent()
    stub.Feedback(
        orchestrator_pb2.FeedbackRequest(request_id=summary.request_id, score=0.5),
        timeout=10,
        metadata=metadata,
    )
    trace = jaeger.wait_for_spans(feedback_trace, {"feedback"})
    (feedback,) = [s for s in trace["spans"] if s["operationName"] == "feedback"]
    assert tags(feedback)[conv.ATTR_FEEDBACK_SCORE] == 0.5
    assert tags(feedback)[conv.ATTR_PROMPT_VERSION] == "rail_fix@1"
