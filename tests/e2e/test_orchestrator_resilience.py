"""Degradation and recovery with real upstreams: the retriever stopped gives a degraded answer;
the inference process stopped gives UNAVAILABLE before the deadline, and once it is started
again the same orchestrator answers without a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from apps.cli.health import wait_until_serving
from raildebug.grpc_runtime.channels import open_channel
from raildebug.settings import OrchestratorSettings
from raildebug.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from services.orchestrator.server import build_server
from tests.support.paths import MODEL_CACHE, REPO_ROOT
from tests.support.servers import free_port, retriever_server

pytestmark = pytest.mark.e2e

QUESTION = orchestrator_pb2.DebugRequest(question="E73-B on point P12", max_tokens=6, k=2)


def _ask(stub: orchestrator_pb2_grpc.OrchestratorStub) -> orchestrator_pb2.DebugSummary:
    events = list(stub.Debug(QUESTION, timeout=60))
    summary: orchestrator_pb2.DebugSummary = events[-1].summary
    return summary


@contextmanager
def inference_process(port: int, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`raildebug serve inference` on a fixed port, so a restart comes back at the same address."""
    env = {
        **os.environ,
        "RAILDEBUG_INFERENCE_PORT": str(port),
        "RAILDEBUG_INFERENCE_MODEL_CACHE_DIR": str(MODEL_CACHE),
        "RAILDEBUG_INFERENCE_SLOTS": "1",
    }
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "apps.cli.main", "serve", "inference"],
            env=env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        status = wait_until_serving(f"127.0.0.1:{port}", timeout_s=240)
        assert status == "SERVING", log_path.read_text()[-3000:]
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def test_degrades_without_retriever_and_recovers_when_inference_returns(tmp_path: Path) -> None:
    inference_port = free_port()
    log_path = tmp_path / "inference.log"
    with (
        retriever_server(tmp_path / "store") as retriever,
        inference_process(inference_port, log_path) as inference,
    ):
        server = build_server(
            OrchestratorSettings(
                port=free_port(),
                retriever_address=f"127.0.0.1:{retriever.port}",
                inference_address=f"127.0.0.1:{inference_port}",
                feedback_db=tmp_path / "feedback.sqlite3",
                prompt_registry_dir=tmp_path / "prompts",
            )
        )
        server.start()
        channel = open_channel(f"127.0.0.1:{server.port}")
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        try:
            healthy = _ask(stub)
            assert not healthy.degraded and healthy.usage.completion_tokens > 0

            retriever.stop(grace_s=0)
            degraded = _ask(stub)
            assert degraded.degraded and "retriever" in degraded.degraded_reason
            assert degraded.usage.completion_tokens > 0, "the answer still comes"

            inference.send_signal(signal.SIGTERM)
            assert inference.wait(timeout=60) == 0
            with pytest.raises(grpc.RpcError) as down:
                _ask(stub)
            assert down.value.code() == grpc.StatusCode.UNAVAILABLE  # not a 60 s hang
            assert "inference" in (down.value.details() or "")

            with inference_process(inference_port, log_path):
                recovered = None
                for _ in range(20):  # the channel reconnects within its 2 s backoff
                    try:
                        recovered = _ask(stub)
                        break
                    except grpc.RpcError as error:
                        assert error.code() == grpc.StatusCode.UNAVAILABLE
                        time.sleep(0.5)
                assert recovered is not None and recovered.usage.completion_tokens > 0
        finally:
            channel.close()
            server.stop(grace_s=0)
