"""One trace across the three real services (in this process, sharing one TracerProvider with
an in-memory exporter): orchestrator → retriever → inference, with our stage spans."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from raildebug.grpc_runtime.channels import open_channel
from raildebug.grpc_runtime.server import RailDebugServer
from raildebug.observability import conventions as conv
from raildebug.settings import OrchestratorSettings
from raildebug.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from services.orchestrator.server import build_server
from tests.support.servers import free_port, inference_server, retriever_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def traced() -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@pytest.fixture(scope="module")
def orchestrator(
    traced: tuple[TracerProvider, InMemorySpanExporter],
    gemma_gguf: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RailDebugServer]:
    provider, _ = traced
    data = tmp_path_factory.mktemp("traced")
    with (
        retriever_server(data / "store", provider) as retriever,
        inference_server(gemma_gguf, provider) as inference,
    ):
        settings = OrchestratorSettings(
            port=free_port(),
            retriever_address=f"127.0.0.1:{retriever.port}",
            inference_address=f"127.0.0.1:{inference.port}",
            feedback_db=data / "feedback.sqlite3",
            prompt_registry_dir=data / "prompts",
            price_table={"Gemma 3 270m": (0.5, 1.5)},
        )
        server = build_server(settings, provider)
        server.start()
        try:
            yield server
        finally:
            server.stop(grace_s=0)


def _wait_for(exporter: InMemorySpanExporter, trace_id: int, names: set[str]) -> list[ReadableSpan]:
    """Server spans end just after the last message is sent; give them a moment."""
    for _ in range(100):
        spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
        if names <= {s.name for s in spans}:
            return spans
        time.sleep(0.05)
    return spans


def test_one_trace_spans_orchestrator_retriever_and_inference(
    orchestrator: RailDebugServer, traced: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    _, exporter = traced
    with open_channel(f"127.0.0.1:{orchestrator.port}") as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        events = list(
            stub.Debug(
                orchestrator_pb2.DebugRequest(
                    question="E73-B when point P12 fails to lock. Why?",
                    max_tokens=12,
                    k=3,
                    session_id="s-1",
                ),
                timeout=120,
            )
        )
        summary = events[-1].summary
        assert summary.prompt_variant == "production"
        assert summary.estimated_cost_usd == pytest.approx(
            (summary.usage.prompt_tokens * 0.5 + summary.usage.completion_tokens * 1.5) / 1e6
        )
        stub.Feedback(
            orchestrator_pb2.FeedbackRequest(request_id=summary.request_id, score=0.5), timeout=10
        )

    (request,) = [s for s in exporter.get_finished_spans() if s.name == "debug.request"]
    expected = {
        "/raildebug.v1.Orchestrator/Debug",
        "raildebug.v1.Retriever/Search",
        "/raildebug.v1.Retriever/Search",
        "raildebug.v1.Inference/Generate",
        "/raildebug.v1.Inference/Generate",
        "debug.request",
        "debug.select_prompt",
        "debug.retrieval",
        "debug.prompt",
        "debug.analysis",
        "debug.response",
    }
    spans = _wait_for(exporter, request.context.trace_id, expected)
    by_name = {s.name: s for s in spans}
    assert expected <= set(by_name), sorted(by_name)

    # The chain: server span of Debug → request → stage → client call → upstream server span.
    def parent_of(name: str) -> str:
        parent = by_name[name].parent
        assert parent is not None, name
        return next(s.name for s in spans if s.context.span_id == parent.span_id)

    assert parent_of("debug.request") == "/raildebug.v1.Orchestrator/Debug"
    assert parent_of("debug.retrieval") == "debug.request"
    assert parent_of("raildebug.v1.Retriever/Search") == "debug.retrieval"
    assert parent_of("/raildebug.v1.Retriever/Search") == "raildebug.v1.Retriever/Search"
    assert parent_of("raildebug.v1.Inference/Generate") == "debug.analysis"
    assert parent_of("/raildebug.v1.Inference/Generate") == "raildebug.v1.Inference/Generate"

    retrieval = by_name["debug.retrieval"].attributes or {}
    assert retrieval[conv.ATTR_RETRIEVAL_K] == 3
    assert retrieval[conv.ATTR_RETRIEVAL_ALPHA] == 0.5
    timeout = retrieval[conv.ATTR_RETRIEVAL_TIMEOUT]
    assert isinstance(timeout, float) and 0 < timeout <= 5  # seconds
    shown = len(events[0].context.passages)
    retrieved = retrieval[conv.ATTR_RETRIEVAL_PASSAGES]
    assert isinstance(retrieved, int) and retrieved >= shown > 0  # the token budget may cut
    prompt = by_name["debug.prompt"].attributes or {}
    assert prompt[conv.ATTR_PROMPT_VERSION] == "rail_fix@3"  # production: the chat prompt
    assert prompt[conv.ATTR_PROMPT_PASSAGES] == shown
    analysis = by_name["debug.analysis"].attributes or {}
    assert analysis[conv.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS] == summary.usage.completion_tokens
    assert analysis[conv.ATTR_GEN_AI_RESPONSE_MODEL] == "Gemma 3 270m"
    assert analysis[conv.ATTR_GEN_AI_REQUEST_MAX_TOKENS] == 12
    assert list(analysis[conv.ATTR_GEN_AI_RESPONSE_FINISH_REASONS]) == [  # type: ignore[arg-type]
        summary.finish_reason
    ]
    top = request.attributes or {}
    assert top[conv.ATTR_GEN_AI_USAGE_INPUT_TOKENS] == summary.usage.prompt_tokens
    assert top[conv.ATTR_PROMPT_VARIANT] == "production"
    assert top[conv.ATTR_CACHE_HIT] is False and top[conv.ATTR_DEGRADED] is False
    assert top[conv.ATTR_COST_USD] == pytest.approx(summary.estimated_cost_usd)
    # durations in seconds, like every duration
    ttft, duration = top[conv.ATTR_DEBUG_TIME_TO_FIRST_TOKEN], top[conv.ATTR_DEBUG_DURATION]
    assert isinstance(ttft, float) and isinstance(duration, float)
    assert 0 < ttft <= duration < 120

    (feedback,) = [s for s in exporter.get_finished_spans() if s.name == "feedback"]
    assert feedback.attributes[conv.ATTR_FEEDBACK_SCORE] == 0.5  # type: ignore[index]
    assert feedback.attributes[conv.ATTR_PROMPT_VERSION] == "rail_fix@3"  # type: ignore[index]
