"""The openai backend against a real OpenAI-compatible server (llama_cpp.server) on loopback."""

from __future__ import annotations

import pytest

from raildebug.v1 import inference_pb2, inference_pb2_grpc
from tests.support.processes import ServiceProcess, StartService

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def openai_inference(start_service: StartService, openai_compatible_server: str) -> ServiceProcess:
    # The endpoint is the shared RAILDEBUG_OPENAI_* group, not an inference variable.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAILDEBUG_OPENAI_BASE_URL", openai_compatible_server)
        return start_service("inference", backend="openai", slots="2")


def _stream(
    stub: inference_pb2_grpc.InferenceStub, request: inference_pb2.GenerateRequest
) -> tuple[list[str], inference_pb2.GenerationResult]:
    deltas: list[str] = []
    result = None
    for message in stub.Generate(request, timeout=120):
        if message.WhichOneof("event") == "delta":
            deltas.append(message.delta)
        else:
            result = message.result
    assert result is not None
    return deltas, result


def test_generate_streams_from_the_openai_compatible_server(
    openai_inference: ServiceProcess,
) -> None:
    stub = inference_pb2_grpc.InferenceStub(openai_inference.channel())
    info = stub.Info(inference_pb2.InfoRequest(), timeout=10)
    assert info.backend == "openai"
    assert info.model == "gemma-3-270m", "the endpoint names the model (its alias)"
    deltas, result = _stream(
        stub,
        inference_pb2.GenerateRequest(
            prompt="A point machine drives the switch blades and",
            max_tokens=16,
            sampling=inference_pb2.SamplingParams(temperature=0.0),
        ),
    )
    assert len(deltas) > 1, "the answer must arrive in pieces, not at the end"
    assert "".join(deltas).strip()
    assert result.finish_reason == inference_pb2.FINISH_REASON_LENGTH
    assert result.usage.completion_tokens == 16
    assert result.timings.time_to_first_token_ms > 0


def test_chat_stop_sequences_and_grammar_reach_the_server(
    openai_inference: ServiceProcess,
) -> None:
    stub = inference_pb2_grpc.InferenceStub(openai_inference.channel())
    deltas, result = _stream(
        stub,
        inference_pb2.GenerateRequest(
            prompt="Error code:",
            grammar='root ::= "E" [0-9] [0-9] "-" ("A" | "B")',
            max_tokens=20,
            sampling=inference_pb2.SamplingParams(temperature=0.0),
        ),
    )
    text = "".join(deltas)
    assert len(text) == 5 and text.startswith("E") and text[3] == "-", text
    deltas, result = _stream(
        stub,
        inference_pb2.GenerateRequest(
            chat=inference_pb2.ChatMessages(
                messages=[inference_pb2.ChatMessage(role="user", content="Count: 1, 2, 3, 4")]
            ),
            stop=[","],
            max_tokens=40,
            sampling=inference_pb2.SamplingParams(temperature=0.0),
        ),
    )
    assert "," not in "".join(deltas)
    assert result.finish_reason in (
        inference_pb2.FINISH_REASON_STOP,
        inference_pb2.FINISH_REASON_LENGTH,
    )
