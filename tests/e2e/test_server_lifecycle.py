"""Health, reflection, graceful drain and degradation of real servers."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from raildebug.grpc_runtime.channels import open_channel
from raildebug.grpc_runtime.server import CoreHolder, RailDebugServer
from raildebug.settings import InferenceSettings
from raildebug.v1 import inference_pb2, inference_pb2_grpc, orchestrator_pb2, orchestrator_pb2_grpc
from services.inference.engine import LlamaEngine
from services.inference.server import SERVICE_NAME, InferenceServicer
from tests.support.net import free_port
from tests.support.processes import Stack, StartService

pytestmark = pytest.mark.e2e


def _health(channel: grpc.Channel, service: str = "") -> str:
    response = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=5
    )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def test_health_is_not_serving_until_the_model_has_loaded(gemma_gguf: Path) -> None:
    gate = threading.Event()
    engine: CoreHolder[LlamaEngine] = CoreHolder("inference model")
    server = RailDebugServer(InferenceSettings(port=free_port(), n_ctx=512), [SERVICE_NAME])
    inference_pb2_grpc.add_InferenceServicer_to_server(
        InferenceServicer(engine), server.grpc_server
    )

    def load() -> LlamaEngine:
        gate.wait(60)
        return LlamaEngine(gemma_gguf, n_ctx=512)

    server.add_core(engine, load)
    server.start()
    try:
        with open_channel(f"127.0.0.1:{server.port}") as channel:
            assert _health(channel) == "NOT_SERVING"
            assert _health(channel, SERVICE_NAME) == "NOT_SERVING"
            stub = inference_pb2_grpc.InferenceStub(channel)
            with pytest.raises(grpc.RpcError) as loading:
                stub.Info(inference_pb2.InfoRequest(), timeout=5)
            assert loading.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "still loading" in loading.value.details()

            gate.set()
            for _ in range(200):
                if _health(channel) == "SERVING":
                    break
                threading.Event().wait(0.05)
            assert _health(channel) == "SERVING"
            assert _health(channel, SERVICE_NAME) == "SERVING"
            assert stub.Info(inference_pb2.InfoRequest(), timeout=5).n_layers == 18
    finally:
        server.stop(grace_s=0)


def test_a_model_that_cannot_load_keeps_health_down_and_says_why(
    start_service: StartService, tmp_path: Path
) -> None:
    broken = start_service("inference", wait=False, model_path=str(tmp_path / "missing.gguf"))
    channel = broken.channel()
    grpc.channel_ready_future(channel).result(timeout=60)
    stub = inference_pb2_grpc.InferenceStub(channel)
    message = ""
    for _ in range(100):
        try:
            stub.Info(inference_pb2.InfoRequest(), timeout=5)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            message = error.details() or ""
            if "failed to load" in message:
                break
        threading.Event().wait(0.1)
    assert "missing.gguf does not exist" in message
    assert _health(channel) == "NOT_SERVING"


def test_reflection_lists_and_describes_every_service(stack: Stack) -> None:
    for service, expected in (
        (stack.orchestrator, "raildebug.v1.Orchestrator"),
        (stack.retriever, "raildebug.v1.Retriever"),
        (stack.inference, "raildebug.v1.Inference"),
    ):
        database = ProtoReflectionDescriptorDatabase(service.channel())
        names = set(database.get_services())
        assert {expected, "grpc.health.v1.Health"} <= names
        pool = descriptor_pool.DescriptorPool(database)
        described = pool.FindServiceByName(expected)
        assert described.methods, f"{expected} must describe its methods"
    debug = (
        descriptor_pool.DescriptorPool(
            ProtoReflectionDescriptorDatabase(stack.orchestrator.channel())
        )
        .FindServiceByName("raildebug.v1.Orchestrator")
        .methods_by_name["Debug"]
    )
    assert debug.server_streaming and debug.output_type.name == "DebugEvent"


def test_sigterm_drains_the_stream_in_flight_then_exits(start_service: StartService) -> None:
    server = start_service("inference", drain_grace_s="60")
    stub = inference_pb2_grpc.InferenceStub(server.channel())
    call = stub.Generate(
        inference_pb2.GenerateRequest(
            prompt="Steps to commission a point machine:\n",
            max_tokens=48,
            sampling=inference_pb2.SamplingParams(temperature=0.0),
        ),
        timeout=120,
    )
    messages = [next(call)]
    server.process.send_signal(signal.SIGTERM)
    messages.extend(call)
    assert messages[-1].WhichOneof("event") == "result", "the stream in flight must complete"
    assert messages[-1].result.finish_reason != inference_pb2.FINISH_REASON_CANCELLED
    assert server.process.wait(timeout=60) == 0


def test_retriever_down_gives_a_degraded_answer_without_context(
    start_service: StartService, stack: Stack
) -> None:
    orchestrator = start_service(
        "orchestrator",
        retriever_address=f"127.0.0.1:{free_port()}",
        inference_address=stack.inference.address,
    )
    stub = orchestrator_pb2_grpc.OrchestratorStub(orchestrator.channel())
    events = list(
        stub.Debug(
            orchestrator_pb2.DebugRequest(question="E73-B on P12", max_tokens=8), timeout=120
        )
    )
    assert events[0].context.passages == []
    summary = events[-1].summary
    assert summary.degraded
    assert "retriever" in summary.degraded_reason
    assert summary.usage.completion_tokens > 0


def test_inference_down_fails_fast_with_unavailable(
    start_service: StartService, stack: Stack
) -> None:
    orchestrator = start_service(
        "orchestrator",
        retriever_address=stack.retriever.address,
        inference_address=f"127.0.0.1:{free_port()}",
    )
    stub = orchestrator_pb2_grpc.OrchestratorStub(orchestrator.channel())
    with pytest.raises(grpc.RpcError) as down:
        list(stub.Debug(orchestrator_pb2.DebugRequest(question="E73-B on P12"), timeout=60))
    assert down.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "inference" in (down.value.details() or "")
