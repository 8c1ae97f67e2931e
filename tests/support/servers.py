"""Real servers in this test process, for tests that need to share state with them (a
TracerProvider, a price table): a retriever over a few sample-corpus files, an inference
server over the packaged Gemma, a Redis server on a free port.

Tests that use them are `service` (and `model` for the retriever and inference servers): the tier
guard refuses to start a gRPC server or a child process in a test without that marker."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from opentelemetry.trace import TracerProvider

from raildebug.grpc_runtime.server import CoreHolder, RailDebugServer
from raildebug.settings import InferenceSettings, RetrieverSettings
from raildebug.v1 import inference_pb2_grpc, retriever_pb2_grpc
from services.inference.engine import LlamaEngine
from services.inference.server import SERVICE_NAME as INFERENCE_SERVICE
from services.inference.server import InferenceServicer
from services.retriever.index import RetrievalIndex
from services.retriever.models import SourceDocument
from services.retriever.server import SERVICE_NAME as RETRIEVER_SERVICE
from services.retriever.server import RetrieverServicer
from tests.support.net import free_port
from tests.support.paths import SAMPLE_CORPUS

__all__ = ["free_port", "inference_server", "redis_server", "retriever_server"]

SMALL_CORPUS = ("docs/errors-points.md", "docs/config-points.md", "docs/errors-track.md")


@contextmanager
def retriever_server(
    store_dir: Path, tracer_provider: TracerProvider | None = None
) -> Iterator[RailDebugServer]:
    index = RetrievalIndex(store_dir)
    index.ingest(
        SourceDocument(source=name, content=(SAMPLE_CORPUS / name).read_text())
        for name in SMALL_CORPUS
    )
    holder: CoreHolder[RetrievalIndex] = CoreHolder("retrieval store")
    holder.set(index)
    server = RailDebugServer(
        RetrieverSettings(port=free_port()), [RETRIEVER_SERVICE], tracer_provider
    )
    retriever_pb2_grpc.add_RetrieverServicer_to_server(
        RetrieverServicer(holder), server.grpc_server
    )
    with _serving(server):
        yield server


@contextmanager
def inference_server(
    gguf: Path, tracer_provider: TracerProvider | None = None
) -> Iterator[RailDebugServer]:
    holder: CoreHolder[LlamaEngine] = CoreHolder("inference model")
    holder.set(LlamaEngine(gguf, n_ctx=4096, slots=1))
    server = RailDebugServer(
        InferenceSettings(port=free_port()), [INFERENCE_SERVICE], tracer_provider
    )
    inference_pb2_grpc.add_InferenceServicer_to_server(
        InferenceServicer(holder), server.grpc_server
    )
    with _serving(server):
        yield server


@contextmanager
def _serving(server: RailDebugServer) -> Iterator[None]:
    """Started for the block, stopped at once after it (tests have nothing in flight to drain)."""
    server.start()
    try:
        yield
    finally:
        server.stop(grace_s=0)


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """A real redis-server on a free loopback port; yields its URL."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            raise RuntimeError("redis-server did not start")
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)
