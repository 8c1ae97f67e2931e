"""Scale-out: one channel spreads calls over every address its target resolves to (what DNS of a
headless Service returns), and servers age connections out so clients re-resolve. Two real
retriever servers (RailDebugServer, the Retriever servicer, a LanceDB store each) listen on two
loopback addresses with the same port, as two pods behind one Service name would."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from raildebug.grpc_runtime.channels import open_channel
from raildebug.grpc_runtime.security import ChannelSecurity
from raildebug.grpc_runtime.server import CoreHolder, RailDebugServer
from raildebug.settings import RetrieverSettings
from raildebug.v1 import retriever_pb2, retriever_pb2_grpc
from services.retriever.index import RetrievalIndex
from services.retriever.models import SourceDocument
from services.retriever.server import SERVICE_NAME, RetrieverServicer
from tests.support.embedding import HashEmbedder
from tests.support.net import free_port

pytestmark = pytest.mark.service


@contextmanager
def retriever(store: Path, host: str, port: int, sources: int, **settings: Any) -> Iterator[None]:
    """A retriever on host:port holding `sources` one-line documents."""
    index = RetrievalIndex(store, embedder=HashEmbedder())
    index.ingest(SourceDocument(f"doc-{n}.md", f"# Doc {n}\n\nE7{n}-B.") for n in range(sources))
    holder: CoreHolder[RetrievalIndex] = CoreHolder("retrieval store")
    holder.set(index)
    server = RailDebugServer(RetrieverSettings(host=host, port=port, **settings), [SERVICE_NAME])
    servicer = RetrieverServicer(holder)
    retriever_pb2_grpc.add_RetrieverServicer_to_server(servicer, server.grpc_server)
    server.start()
    try:
        yield
    finally:
        server.stop(grace_s=0)


def _answered_by(target: str, calls: int) -> collections.Counter[int]:
    """How many of `calls` Stats calls on one channel each replica answered (by its sources)."""
    with open_channel(target, ChannelSecurity()) as channel:
        stub = retriever_pb2_grpc.RetrieverStub(channel)
        return collections.Counter(
            stub.Stats(retriever_pb2.StatsRequest(), timeout=10).sources for _ in range(calls)
        )


def test_one_channel_spreads_calls_over_every_resolved_replica(tmp_path: Path) -> None:
    port = free_port()
    with ExitStack() as replicas:
        replicas.enter_context(retriever(tmp_path / "a", "127.0.0.1", port, sources=1))
        replicas.enter_context(retriever(tmp_path / "b", "127.0.0.2", port, sources=2))
        # The two addresses a headless Service's DNS name would resolve to, one port.
        answered = _answered_by(f"ipv4:127.0.0.1:{port},127.0.0.2:{port}", calls=20)
    # Round robin from the first READY connection on: 10 / 10, or 11 / 9 while the second
    # connection is still being made. Pinned to one replica (pick_first) it was 20 / 0.
    assert set(answered) == {1, 2}, f"calls per replica (by its source count): {answered}"
    assert min(answered.values()) >= 8, f"calls per replica (by its source count): {answered}"


def test_connections_age_out_and_calls_keep_working(tmp_path: Path) -> None:
    """max_connection_age closes the connection under the channel (GOAWAY); the channel
    reconnects, which is when it re-resolves, and no call fails on the way."""
    port = free_port()
    age = {"max_connection_age_s": 0.3, "max_connection_age_grace_s": 5.0}
    states: list[grpc.ChannelConnectivity] = []
    seen = threading.Condition()

    def record(state: grpc.ChannelConnectivity) -> None:
        with seen:
            states.append(state)
            seen.notify_all()

    with (
        retriever(tmp_path / "a", "127.0.0.1", port, sources=1, **age),
        open_channel(f"dns:///127.0.0.1:{port}", ChannelSecurity()) as channel,
    ):
        channel.subscribe(record, try_to_connect=True)
        stub = retriever_pb2_grpc.RetrieverStub(channel)
        deadline = time.monotonic() + 2.0
        answered = 0
        while time.monotonic() < deadline:  # several connection ages
            assert stub.Stats(retriever_pb2.StatsRequest(), timeout=10).sources == 1
            answered += 1
            time.sleep(0.05)
        channel.unsubscribe(record)
    ready = grpc.ChannelConnectivity.READY
    assert answered >= 10
    first_ready = states.index(ready)
    assert any(state is not ready for state in states[first_ready:]), (
        f"the connection was never closed for its age: {states}"
    )
