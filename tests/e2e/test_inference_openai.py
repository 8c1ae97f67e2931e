"""The openai backend against a real OpenAI-compatible server (llama_cpp.server) on loopback."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from raildebug.v1 import inference_pb2, inference_pb2_grpc

from .conftest import ServiceProcess, StartService, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def openai_compatible_server(
    gemma_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("llama-cpp-server") / "server.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gemma_gguf),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_threads",
            "1",
            "--n_ctx",
            "2048",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture(scope="module")
def openai_inference(start_service: StartService, openai_compatible_server: str) -> ServiceProcess:
    return start_service(
        "inference", backend="openai", openai_base_url=openai_compatible_server, slots="2"
    )


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
    openai_inference: ServiceProcess, gemma_gguf: Path
) -> None:
    stub = inference_pb2_grpc.InferenceStub(openai_inference.channel())
    info = stub.Info(inference_pb2.InfoRequest(), timeout=10)
    assert info.backend == "openai"
    assert info.model == str(gemma_gguf), "llama_cpp.server names the model by its path"
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
