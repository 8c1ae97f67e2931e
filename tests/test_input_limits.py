"""The floor's input guarantees: bounded error messages, bounded ids, parsed requests.

Before: error messages echoed whole inputs (past ~16 KB the status no longer fits gRPC's
metadata limit and Python clients see RESOURCE_EXHAUSTED "Stream removed"), ids had no limit,
and a body that is not the method's message got INTERNAL "Exception deserializing request!".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import cast

import grpc
import pytest

from raildebug.domain import PassageFilter
from raildebug.errors import (
    MAX_MESSAGE_BYTES,
    InvalidRequest,
    NotFound,
    Overloaded,
    clip,
)
from raildebug.grpc_runtime.server import CoreHolder, RailDebugServer
from raildebug.limits import (
    MAX_CLIENT_ID_CHARS,
    check_identifier,
    check_label,
    check_passage_filter,
)
from raildebug.settings import RetrieverSettings
from raildebug.v1 import retriever_pb2, retriever_pb2_grpc
from services.retriever.index import RetrievalIndex
from services.retriever.models import IngestReport, SourceDocument, StoreStats
from services.retriever.server import SERVICE_NAME, RetrieverServicer
from tests.support.net import free_port


def test_clip_shows_short_values_whole_and_says_how_long_a_cut_one_was() -> None:
    assert clip("colour") == "'colour'"
    assert clip("a\0b") == r"'a\x00b'"
    cut = clip("x" * 1_000_000)
    assert cut.endswith("… (1000000 characters)") and len(cut) < 120
    assert len(clip(["y" * 500])) <= 81


@pytest.mark.parametrize("char", ["x", "é", "猫", "\U0001f682"])
def test_every_domain_error_message_fits_a_grpc_status(char: str) -> None:
    for error in (
        InvalidRequest(char * 1_000_000),
        NotFound(char * 100_000),
        Overloaded(char * 50_000, retry_after_s=2.0),
    ):
        size = len(str(error).encode())
        assert size <= MAX_MESSAGE_BYTES, (type(error).__name__, size)
        assert str(error).endswith("(message truncated)")
    assert Overloaded("busy", retry_after_s=2.0).retry_after_s == 2.0
    assert str(InvalidRequest("short")) == "short"


def test_ids_are_bounded_printable_and_without_spaces() -> None:
    check_identifier("client_id", "", MAX_CLIENT_ID_CHARS)
    check_identifier("client_id", "ci-bot@team/42", MAX_CLIENT_ID_CHARS)
    with pytest.raises(InvalidRequest, match="client_id is 1000000 characters; the limit is 128"):
        check_identifier("client_id", "c" * 1_000_000, MAX_CLIENT_ID_CHARS)
    for bad in ("a b", "a\0b", "a\nb", "a\u200bb"):
        with pytest.raises(InvalidRequest, match="whitespace or control characters"):
            check_identifier("client_id", bad, MAX_CLIENT_ID_CHARS)
    check_label("source", "docs/Point machines.md", 1024)
    with pytest.raises(InvalidRequest, match="control characters"):
        check_label("source", "docs/a\0.md", 1024)


def test_filters_are_bounded() -> None:
    check_passage_filter(PassageFilter(kinds=("doc",), source_prefix="src/", metadata={"a": "b"}))
    with pytest.raises(InvalidRequest, match=r"filter\.source_prefix is 20000 characters"):
        check_passage_filter(PassageFilter(source_prefix="s" * 20_000))


# --- requests are parsed inside the RPC ------------------------------------------------------


class _CountingIndex:
    """What the Retriever servicer calls, without a store or a model."""

    def __init__(self) -> None:
        self.received: list[str] = []

    def ingest(self, documents: Iterable[SourceDocument]) -> IngestReport:
        for document in documents:
            self.received.append(document.source)
        return IngestReport(documents_received=len(self.received))

    def stats(self) -> StoreStats:
        return StoreStats(0, 0, "none", 0, "none", {})


@pytest.fixture
def retriever_address() -> Iterator[tuple[str, _CountingIndex]]:
    index = _CountingIndex()
    holder: CoreHolder[RetrievalIndex] = CoreHolder("retrieval store")
    holder.set(cast(RetrievalIndex, index))
    server = RailDebugServer(RetrieverSettings(port=free_port()), [SERVICE_NAME])
    retriever_pb2_grpc.add_RetrieverServicer_to_server(
        RetrieverServicer(holder), server.grpc_server
    )
    port = server.start()
    try:
        yield f"127.0.0.1:{port}", index
    finally:
        server.stop(grace_s=0)


NOT_A_MESSAGE = [b"\xff\xff\xff", b"\x0a\x05ab", b"\x0a\x02\xc3\x28"]  # corrupt; bad UTF-8


@pytest.mark.service
@pytest.mark.parametrize("body", NOT_A_MESSAGE)
def test_a_body_that_is_not_the_message_is_invalid_argument(
    retriever_address: tuple[str, _CountingIndex], body: bytes
) -> None:
    address, _ = retriever_address
    with grpc.insecure_channel(address) as channel:
        delete = channel.unary_unary("/raildebug.v1.Retriever/DeleteSource")
        with pytest.raises(grpc.RpcError) as failure:
            delete(body, timeout=10)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        details = str(failure.value.details())
        assert "not a valid raildebug.v1.DeleteSourceRequest message" in details
        health = channel.unary_unary("/grpc.health.v1.Health/Check")
        with pytest.raises(grpc.RpcError) as failure:
            health(body, timeout=10)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # a good body right after is answered as usual
        stats = channel.unary_unary("/raildebug.v1.Retriever/Stats")
        reply = stats(retriever_pb2.StatsRequest().SerializeToString(), timeout=10)
        assert retriever_pb2.StatsResponse.FromString(reply).backend == "none"


@pytest.mark.service
def test_a_bad_message_in_a_request_stream_is_invalid_argument(
    retriever_address: tuple[str, _CountingIndex],
) -> None:
    address, index = retriever_address
    good = retriever_pb2.IngestDocument(source="docs/a.md", content="text").SerializeToString()
    with grpc.insecure_channel(address) as channel:
        ingest = channel.stream_unary("/raildebug.v1.Retriever/Ingest")
        with pytest.raises(grpc.RpcError) as failure:
            ingest(iter([good, b"\x0a\x02\xc3\x28"]), timeout=10)
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "raildebug.v1.IngestDocument" in str(failure.value.details())
        assert index.received == ["docs/a.md"]
        summary = retriever_pb2.IngestSummary.FromString(ingest(iter([good]), timeout=10))
        assert summary.documents_received == 2
