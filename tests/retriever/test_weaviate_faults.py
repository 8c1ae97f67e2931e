"""The Weaviate store when things go wrong, against real weaviate-server processes: refused
credentials, the server stopping and coming back under a serving retriever, kill -9 of the
retriever and of Weaviate in the middle of an ingest, and a collection from an older layout."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from apps.cli.health import serving_status
from raildebug.errors import Misconfigured
from raildebug.v1 import retriever_pb2, retriever_pb2_grpc
from services.retriever import weaviate_store
from services.retriever.chunking import chunk_document
from services.retriever.index import RetrievalIndex
from services.retriever.models import SourceDocument
from services.retriever.weaviate_store import WeaviateChunkStore
from tests.support.embedding import DIM, HashEmbedder
from tests.support.paths import REPO_ROOT
from tests.support.processes import ServiceProcess, StartService
from tests.support.weaviate import WeaviateServer, weaviate_server

pytestmark = pytest.mark.service

SAMPLE = REPO_ROOT / "data" / "sample-corpus"
SKIPPED = {"README.md", "QUESTIONS.md"}


def sample_documents() -> list[SourceDocument]:
    return [
        SourceDocument(str(path.relative_to(SAMPLE)), path.read_text())
        for path in sorted(SAMPLE.rglob("*"))
        if path.is_file() and path.name not in SKIPPED
    ]


@pytest.fixture
def own_weaviate(tmp_path: Path) -> Iterator[WeaviateServer]:
    """A server of this test's own: the test stops or kills it."""
    with weaviate_server(tmp_path / "weaviate") as server:
        yield server


def weaviate_retriever(
    start_service: StartService, server: WeaviateServer, collection: str
) -> ServiceProcess:
    return start_service(
        "retriever",
        store_backend="weaviate",
        weaviate_url=server.url,
        weaviate_grpc_port=str(server.grpc_port),
        weaviate_collection=collection,
        weaviate_startup_wait_s="60",
        store_check_interval_s="0.5",
    )


def wait_for_health(address: str, wanted: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    status = serving_status(address)
    while status != wanted and time.monotonic() < deadline:
        time.sleep(0.2)
        status = serving_status(address)
    assert status == wanted, f"{address} stayed {status}, expected {wanted}"


def search(service: ServiceProcess, text: str) -> list[str]:
    stub = retriever_pb2_grpc.RetrieverStub(service.channel())
    response = stub.Search(retriever_pb2.SearchRequest(query=text, k=5), timeout=30)
    return [p.id for p in response.passages]


def test_a_wrong_api_key_is_a_clear_startup_error(tmp_path: Path) -> None:
    with weaviate_server(tmp_path / "weaviate", api_keys=("right-key",)) as server:
        for key in ("wrong-key", None):
            with pytest.raises(Misconfigured) as refused:
                WeaviateChunkStore(server.url, DIM, grpc_port=server.grpc_port, api_key=key)
            message = str(refused.value)
            assert f"Weaviate at {server.url} refused the retriever's credentials" in message
            assert "RAILDEBUG_RETRIEVER_WEAVIATE_API_KEY" in message
        store = WeaviateChunkStore(server.url, DIM, grpc_port=server.grpc_port, api_key="right-key")
        assert store.count() == 0
        store.close()


def test_weaviate_stopping_makes_the_retriever_not_serving_until_it_is_back(
    own_weaviate: WeaviateServer, start_service: StartService
) -> None:
    retriever = weaviate_retriever(start_service, own_weaviate, "Faults")
    stub = retriever_pb2_grpc.RetrieverStub(retriever.channel())
    documents = [d for d in sample_documents() if d.source == "docs/errors-points.md"]
    summary = stub.Ingest(
        iter(retriever_pb2.IngestDocument(source=d.source, content=d.content) for d in documents),
        timeout=120,
    )
    assert summary.documents_written == 1
    before = search(retriever, "E73-B point fails to lock")
    assert before

    own_weaviate.stop()
    wait_for_health(retriever.address, "NOT_SERVING")
    with pytest.raises(grpc.RpcError) as down:
        search(retriever, "E73-B point fails to lock")
    assert down.value.code() == grpc.StatusCode.UNAVAILABLE
    assert own_weaviate.url in (down.value.details() or "")

    own_weaviate.start()  # same ports, same data directory
    wait_for_health(retriever.address, "SERVING")
    assert search(retriever, "E73-B point fails to lock") == before  # nothing stored was lost
    assert retriever.process.poll() is None


def ingest_in_background(
    service: ServiceProcess, documents: list[SourceDocument]
) -> threading.Thread:
    """Stream an ingest from a thread; it ends (with an error) when the retriever or Weaviate
    dies."""

    def run() -> None:
        stub = retriever_pb2_grpc.RetrieverStub(service.channel())
        requests = (
            retriever_pb2.IngestDocument(source=d.source, content=d.content) for d in documents
        )
        with contextlib.suppress(grpc.RpcError):
            stub.Ingest(requests, timeout=300)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def stored_objects(server: WeaviateServer, collection: str) -> int:
    with server.client() as client:
        if not client.collections.exists(collection):
            return 0
        total = client.collections.get(collection).aggregate.over_all(total_count=True)
        return int(total.total_count or 0)


def wait_for_objects(server: WeaviateServer, collection: str, more_than: int) -> None:
    deadline = time.monotonic() + 120
    while stored_objects(server, collection) <= more_than:
        assert time.monotonic() < deadline, "the ingest wrote nothing in 120 s"
        time.sleep(0.05)


def test_kill_9_mid_ingest_then_rerunning_it_leaves_the_clean_count(
    own_weaviate: WeaviateServer, start_service: StartService, tmp_path: Path
) -> None:
    documents = sample_documents()
    reference = RetrievalIndex(tmp_path / "reference", embedder=HashEmbedder())
    reference.ingest(documents)
    clean, sources = reference.store.count(), reference.store.stats().sources
    collection = f"Kill{uuid.uuid4().hex[:8]}"

    # 1. kill -9 the retriever while it writes.
    retriever = weaviate_retriever(start_service, own_weaviate, collection)
    ingest = ingest_in_background(retriever, documents)
    wait_for_objects(own_weaviate, collection, 0)
    retriever.process.kill()
    retriever.process.wait()
    ingest.join(timeout=60)
    assert stored_objects(own_weaviate, collection) < clean  # it was interrupted

    # 2. kill -9 weaviate-server while a new retriever writes.
    retriever = weaviate_retriever(start_service, own_weaviate, collection)
    partial = stored_objects(own_weaviate, collection)
    ingest = ingest_in_background(retriever, documents)
    wait_for_objects(own_weaviate, collection, partial)
    own_weaviate.kill()
    ingest.join(timeout=120)
    own_weaviate.start()
    wait_for_health(retriever.address, "SERVING", timeout_s=60)

    # 3. Running the ingest again completes it: the clean count, no duplicate, no orphan.
    stub = retriever_pb2_grpc.RetrieverStub(retriever.channel())
    stub.Ingest(
        iter(retriever_pb2.IngestDocument(source=d.source, content=d.content) for d in documents),
        timeout=300,
    )
    stats = stub.Stats(retriever_pb2.StatsRequest(), timeout=30)
    assert (stats.passages, stats.sources) == (clean, sources)
    assert stored_objects(own_weaviate, collection) == clean  # no orphaned chunk left behind
    with own_weaviate.client() as client:
        chunks = client.collections.get(collection)
        ids = [
            str(o.properties["chunk_id"]) for o in chunks.iterator(return_properties=["chunk_id"])
        ]
        state = client.collections.get(f"{collection}State")
        records = {
            str(o.properties["record"]) for o in state.iterator(return_properties=["record"])
        }
    assert len(ids) == len(set(ids)) == clean  # no duplicate
    assert records == {"source", "meta"}  # no interrupted write left unresolved


def test_an_older_collection_gains_the_new_properties_and_its_sources_are_rewritten(
    weaviate: WeaviateServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"Migrate{uuid.uuid4().hex[:8]}"
    embedder = HashEmbedder()
    documents = [
        SourceDocument(
            "docs/points.md", "# Points\n\nE73-B lock timeout.\n", metadata={"subsystem": "points"}
        )
    ]

    def open_store() -> WeaviateChunkStore:
        return WeaviateChunkStore(
            weaviate.url,
            DIM,
            embedding_model=embedder.model_name,
            collection=name,
            grpc_port=weaviate.grpc_port,
        )

    # An older release had no `component` property.
    older = tuple(key for key in weaviate_store.METADATA_PROPERTIES if key != "component")
    with monkeypatch.context() as patch:
        patch.setattr(weaviate_store, "METADATA_PROPERTIES", older)
        old = open_store()
        RetrievalIndex(Path("unused"), embedder=embedder, store=old).ingest(documents)
        old.close()
    with weaviate.client() as client:
        properties = {p.name for p in client.collections.get(name).config.get().properties}
    assert "component" not in properties

    store = open_store()
    with weaviate.client() as client:
        properties = {p.name for p in client.collections.get(name).config.get().properties}
    assert "component" in properties
    assert store.source_hashes() == {"docs/points.md": ""}  # looks changed: rewritten next ingest
    report = RetrievalIndex(Path("unused"), embedder=embedder, store=store).ingest(documents)
    assert report.documents_written == 1 and store.count() == len(chunk_document(documents[0]))
    assert store.source_hashes()["docs/points.md"] != ""
    store.drop()
