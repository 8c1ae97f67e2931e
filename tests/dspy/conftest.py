"""Real services for the DSPy tests: the inference service with the packaged Gemma, and a
retriever holding a few sample-corpus documents (enough for the questions these tests ask)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from raildebug.grpc_runtime.channels import open_channel
from raildebug.v1 import retriever_pb2, retriever_pb2_grpc
from tests.e2e.conftest import ServiceProcess, StartService, start_service

__all__ = ["start_service"]  # the e2e fixture, shared with these tests

INGESTED = ("docs/errors-points.md", "docs/errors-axle-counter.md", "src/ace/axle_counter.c")


@pytest.fixture(scope="session")
def inference(start_service: StartService) -> ServiceProcess:
    return start_service("inference")


@pytest.fixture(scope="session")
def retriever(start_service: StartService, sample_corpus: Path) -> Iterator[ServiceProcess]:
    service = start_service("retriever")
    documents = [
        retriever_pb2.IngestDocument(source=s, content=(sample_corpus / s).read_text())
        for s in INGESTED
    ]
    with open_channel(service.address) as channel:
        summary = retriever_pb2_grpc.RetrieverStub(channel).Ingest(iter(documents), timeout=300)
    assert summary.documents_written == len(INGESTED), summary
    yield service
