"""The DSPy LM engine and the `dspy` analyzer over the one Inference client, without a model.

A canned raildebug.v1 Inference servicer on loopback stands in for the remote service (the real
`InferenceClient` talks to it over gRPC): it records each GenerateRequest and answers with fixed
deltas and a fixed result, or with a status. What is checked is the mapping: lm15 request →
Generate call, deltas and GenerationOutcome → lm15 stream events, domain errors → lm15 errors.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import dspy
import grpc
import pytest
from dspy import lm15

from raildebug.domain import FinishReason, GenerationOutcome
from raildebug.errors import InvalidRequest, Overloaded
from raildebug.settings import OrchestratorSettings
from raildebug.v1 import common_pb2, inference_pb2, inference_pb2_grpc
from services.orchestrator.analyzers.dspy.artifacts import ProgramStore
from services.orchestrator.analyzers.dspy.lm import InferenceEngine, RequestScope, rail_lm
from services.orchestrator.analyzers.dspy.program import (
    GenerateRailFix,
    RailFixRAG,
    query_text,
    rail_settings,
)
from services.orchestrator.analyzers.dspy.serving import DspyAnalyzer, JsonStringText
from services.orchestrator.clients.inference import InferenceClient
from services.orchestrator.models import AnalysisInput, ContextPassage, DebugQuestion

FIX = "Raise `pm_lock_timeout_ms@P12` to 2500 [1]"
JSON_DELTAS = ('{"fix": "', "Raise `pm_lock_timeout_ms@P12`", " to 2500 [1]", '"}')


@dataclass
class CannedInference(inference_pb2_grpc.InferenceServicer):
    deltas: tuple[str, ...] = ("Hel", "lo")
    finish: inference_pb2.FinishReason.ValueType = inference_pb2.FINISH_REASON_STOP
    error: str = ""
    status: grpc.StatusCode | None = None
    requests: list[inference_pb2.GenerateRequest] = field(default_factory=list)

    def Generate(
        self, request: inference_pb2.GenerateRequest, context: grpc.ServicerContext
    ) -> Iterator[inference_pb2.GenerateResponse]:
        self.requests.append(request)
        if self.status is not None:
            context.abort(self.status, "refused by the canned servicer: max_tokens too large")
        for delta in self.deltas:
            yield inference_pb2.GenerateResponse(delta=delta)
        yield inference_pb2.GenerateResponse(
            result=inference_pb2.GenerationResult(
                finish_reason=self.finish,
                usage=common_pb2.TokenUsage(
                    prompt_tokens=11, completion_tokens=len(self.deltas), cached_prompt_tokens=3
                ),
                timings=common_pb2.GenerationTimings(
                    queue_ms=1.0, time_to_first_token_ms=2.0, prefill_ms=3.0, decode_ms=4.0
                ),
                model="canned-gemma",
                error=self.error,
            )
        )

    def Info(
        self, request: inference_pb2.InfoRequest, context: grpc.ServicerContext
    ) -> inference_pb2.InfoResponse:
        return inference_pb2.InfoResponse(model="canned-gemma", quantization="Q4_K_M")

    def CountTokens(
        self, request: inference_pb2.CountTokensRequest, context: grpc.ServicerContext
    ) -> inference_pb2.CountTokensResponse:
        return inference_pb2.CountTokensResponse(counts=[len(t.split()) for t in request.texts])


@pytest.fixture
def canned() -> Iterator[tuple[CannedInference, InferenceClient]]:
    servicer = CannedInference()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    inference_pb2_grpc.add_InferenceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    client = InferenceClient(f"127.0.0.1:{port}")
    try:
        yield servicer, client
    finally:
        client.close()
        server.stop(grace=0)


def _request(request_id: str = "") -> lm15.Request:
    metadata = {"metadata": {"request_id": request_id}} if request_id else None
    return lm15.Request(
        model="raildebug/inference",
        system="You fix railway software.",
        messages=(lm15.Message.user("Why E73-B?"), lm15.Message.assistant("Because")),
        config=lm15.Config(
            max_tokens=32,
            temperature=0.0,
            top_p=0.9,
            seed=7,
            stop=("\n\nUser:",),
            response_format={"type": "json_schema", "schema": {"type": "object"}},
            extensions=metadata,
        ),
    )


def test_a_request_becomes_one_generate_call_and_its_stream_lm15_events(
    canned: tuple[CannedInference, InferenceClient],
) -> None:
    servicer, client = canned
    engine = InferenceEngine(client)
    scope = RequestScope(deadline=time.monotonic() + 30)
    engine.open_scope("dspy-r1", scope)
    events = list(engine.stream(_request("dspy-r1")))

    assert isinstance(events[0], lm15.StreamStartEvent) and events[0].id == "dspy-r1"
    assert [e.delta.text for e in events[1:-1]] == ["Hel", "lo"]
    end = events[-1]
    assert isinstance(end, lm15.StreamEndEvent) and end.finish_reason == "stop"
    assert end.usage == lm15.Usage(
        input_tokens=11, output_tokens=2, total_tokens=13, cache_read_tokens=3
    )
    sent = servicer.requests[-1]
    assert [(m.role, m.content) for m in sent.chat.messages] == [
        ("system", "You fix railway software."),
        ("user", "Why E73-B?"),
        ("assistant", "Because"),
    ]
    assert (sent.max_tokens, list(sent.stop), sent.request_id) == (32, ["\n\nUser:"], "dspy-r1")
    assert json.loads(sent.json_schema) == {"type": "object"}
    assert sent.sampling.seed == 7 and sent.sampling.top_p == pytest.approx(0.9)
    assert sent.sampling.HasField("temperature") and not sent.sampling.HasField("top_k")
    # The scope records domain outcomes, not wire messages; the counters add them up.
    assert scope.results == [
        GenerationOutcome(FinishReason.STOP, 11, 2, 3, 1.0, 2.0, 3.0, 4.0, 0.0, "canned-gemma")
    ]
    assert (engine.counters.calls, engine.counters.prompt_tokens) == (1, 11)
    assert engine.close_scope("dspy-r1") is scope
    # The client's model name, one definition for both analyzers.
    assert engine.model_name() == client.model_name(1.0) == "canned-gemma"


def test_complete_goes_through_the_same_stream(
    canned: tuple[CannedInference, InferenceClient],
) -> None:
    _, client = canned
    response = InferenceEngine(client).complete(_request())
    assert response.message.text == "Hello" and response.finish_reason == "stop"
    assert response.usage.output_tokens == 2


@pytest.mark.parametrize(
    ("status", "lm_error", "domain"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, lm15.InvalidRequestError, InvalidRequest),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, lm15.RateLimitError, Overloaded),
    ],
)
def test_statuses_become_lm15_errors_caused_by_the_domain_error(
    canned: tuple[CannedInference, InferenceClient],
    status: grpc.StatusCode,
    lm_error: type[Exception],
    domain: type[Exception],
) -> None:
    servicer, client = canned
    servicer.status = status
    engine = InferenceEngine(client)
    with pytest.raises(lm_error) as raised:
        list(engine.stream(_request()))
    assert isinstance(raised.value.__cause__, domain)
    assert engine.counters.calls == 0


def test_failed_or_cancelled_generations_raise(
    canned: tuple[CannedInference, InferenceClient],
) -> None:
    servicer, client = canned
    engine = InferenceEngine(client)
    servicer.finish, servicer.error = inference_pb2.FINISH_REASON_ERROR, "engine broke"
    with pytest.raises(lm15.ServerError, match="engine broke"):
        list(engine.stream(_request()))
    servicer.finish = inference_pb2.FINISH_REASON_CANCELLED
    with pytest.raises(lm15.TimeoutError, match="cancelled"):
        list(engine.stream(_request()))
    servicer.finish = inference_pb2.FINISH_REASON_STOP
    engine.open_scope(
        "gone", RequestScope(deadline=time.monotonic() + 30, is_cancelled=lambda: True)
    )
    with pytest.raises(lm15.TimeoutError, match="caller cancelled"):
        list(engine.stream(_request("gone")))


def test_a_dspy_program_predicts_through_the_engine(
    canned: tuple[CannedInference, InferenceClient],
) -> None:
    servicer, client = canned
    servicer.deltas = JSON_DELTAS
    engine = InferenceEngine(client)
    with rail_settings(rail_lm(engine, max_tokens=40)):
        prediction = dspy.Predict(GenerateRailFix)(context="[1] a", query="Why E73-B?")
    assert prediction.fix == FIX
    assert json.loads(servicer.requests[-1].json_schema)["required"] == ["fix"]


TOKEN_DELTAS = ("{", '"fix', '":', ' "', "Raise", " `pm", "_lock_timeout_ms@P12`", " to 2500 [1]")


@pytest.mark.parametrize("deltas", [JSON_DELTAS, (*TOKEN_DELTAS, '"', "}")])
def test_the_dspy_analyzer_streams_the_fix_then_one_outcome(
    canned: tuple[CannedInference, InferenceClient], tmp_path: Path, deltas: tuple[str, ...]
) -> None:
    servicer, client = canned
    servicer.deltas = deltas
    manifest = {
        "name": "rail_fix",
        "program": "RailFixRAG",
        "model": "canned-gemma",
        "data_version": "test",
        "metric_version": "rail_fix_metric@1",
        "optimizer": {"name": "none", "demos": 0},
        "scores": {"uncompiled": 0.0, "compiled": 0.0},
        "cost": {"lm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "minutes": 0.0},
    }
    ProgramStore(tmp_path, shipped_dir=None).save(manifest, RailFixRAG())
    settings = OrchestratorSettings(analyzer="dspy", dspy_program="rail_fix")
    analyzer = DspyAnalyzer.load(settings, client, programs_dir=tmp_path)
    assert analyzer.model(1.0) == "canned-gemma (dspy rail_fix@1)"

    question = DebugQuestion(question="Why E73-B?", error_log="E73-B P12", code_snippet="x = 1")
    passage = ContextPassage(
        id="p1",
        text="E73-B: lock not confirmed",
        source="docs/e.md",
        line_start=1,
        line_end=2,
        title="",
        kind="doc",
        score=1.0,
    )
    work = AnalysisInput(question, [passage], "", (), 40)
    items = list(analyzer.analyze(work, timeout_s=30, request_id="r1", is_cancelled=lambda: False))

    *texts, outcome = items
    assert texts and "".join(str(t) for t in texts) == FIX
    assert isinstance(outcome, GenerationOutcome)
    assert outcome.finish_reason == FinishReason.STOP
    assert (outcome.prompt_tokens, outcome.completion_tokens) == (11, len(deltas))
    assert outcome.model == "canned-gemma (dspy rail_fix@1)"
    sent = servicer.requests[-1]
    assert sent.request_id == "dspy-r1"
    user_turn = sent.chat.messages[-1].content
    assert query_text("Why E73-B?", "E73-B P12", "x = 1") in user_turn.replace("\\n", "\n")
    assert "[1] docs/e.md:1-2" in user_turn


def test_streamed_json_string_values_are_decoded_across_chunk_boundaries() -> None:
    raw = '"line one\\nx = \\"a\\"\\t\\u00e9\\ud83d\\ude82 done" trailing'
    expected = 'line one\nx = "a"\t\u00e9\U0001f682 done'
    for size in (1, 2, 3, 5, len(raw)):
        decoder = JsonStringText()
        chunks = [raw[i : i + size] for i in range(0, len(raw), size)]
        assert "".join(decoder.feed(chunk) for chunk in chunks) == expected, size
    assert JsonStringText().feed("  plain, not a JSON string") == "plain, not a JSON string"
