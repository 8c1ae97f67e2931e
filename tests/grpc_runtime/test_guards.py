"""The guards in front of every servicer, on a real server: wrong bearer tokens are throttled
per peer address (no unthrottled token guessing), and calls without an authenticated client
are rate limited by their address unless `rate_limit_key=client_id` says otherwise.

The servicer is the retriever's over a store that never loads: UNAVAILABLE ("still loading")
means a call got past the guards."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
from pydantic import SecretStr

from raildebug.grpc_runtime.channels import open_channel
from raildebug.grpc_runtime.security import ChannelSecurity
from raildebug.grpc_runtime.server import CoreHolder, RailDebugServer
from raildebug.settings import RetrieverSettings
from raildebug.v1 import retriever_pb2, retriever_pb2_grpc
from services.retriever.index import RetrievalIndex
from services.retriever.server import SERVICE_NAME, RetrieverServicer
from tests.support.net import free_port

pytestmark = pytest.mark.service

TOKEN = "tok-good-0123456789"
GOT_THROUGH = grpc.StatusCode.UNAVAILABLE


@contextmanager
def server(**settings: Any) -> Iterator[int]:
    """Listens on [::] (IPv4 and IPv6): 127.0.0.1 and ::1 are two peers of one server."""
    port = free_port()
    server = RailDebugServer(RetrieverSettings(host="[::]", port=port, **settings), [SERVICE_NAME])
    index: CoreHolder[RetrievalIndex] = CoreHolder("retrieval store")
    retriever_pb2_grpc.add_RetrieverServicer_to_server(RetrieverServicer(index), server.grpc_server)
    server.start()
    try:
        yield port
    finally:
        server.stop(grace_s=0)


def stats(
    address: str, token: str | None = None, client_id: str = ""
) -> tuple[grpc.StatusCode, dict[str, str], str]:
    metadata = (("x-client-id", client_id),) if client_id else ()
    with open_channel(address, ChannelSecurity(token=token)) as channel:
        stub = retriever_pb2_grpc.RetrieverStub(channel)
        try:
            stub.Stats(retriever_pb2.StatsRequest(), timeout=10, metadata=metadata)
        except grpc.RpcError as error:
            return error.code(), dict(error.trailing_metadata() or ()), error.details() or ""
    return grpc.StatusCode.OK, {}, ""


def test_wrong_tokens_are_throttled_per_peer_before_any_token_is_checked() -> None:
    throttle = {"auth_failure_burst": 3, "auth_failure_per_s": 2.0}  # then 1 guess per 0.5 s
    with server(auth_tokens=SecretStr(f"ci {TOKEN}"), **throttle) as port:
        v4, v6 = f"127.0.0.1:{port}", f"[::1]:{port}"
        guesses = [stats(v4, f"tok-guess-{n}")[0] for n in range(3)]
        assert guesses == [grpc.StatusCode.UNAUTHENTICATED] * 3
        code, trailing, details = stats(v4, "tok-guess-3")
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert 0 < int(trailing["retry-after-ms"]) <= 500
        assert "too many wrong bearer tokens from ipv4:127.0.0.1" in details
        assert "tok-" not in details
        # While throttled, the right token is refused too: the answer tells a guesser nothing.
        assert stats(v4, TOKEN)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
        # Missing credentials are no guess, and another address is not affected.
        assert stats(v6, None)[0] == grpc.StatusCode.UNAUTHENTICATED
        assert stats(v6, TOKEN)[0] == GOT_THROUGH
        time.sleep(0.6)  # one attempt regained
        assert stats(v4, TOKEN)[0] == GOT_THROUGH
        assert stats(v4, "tok-guess-4")[0] == grpc.StatusCode.UNAUTHENTICATED
        assert stats(v4, TOKEN)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_without_authentication_the_limit_counts_calls_per_peer_whatever_client_id() -> None:
    limit = {"rate_limit_per_s": 0.01, "rate_limit_burst": 2}
    with server(**limit) as port:
        v4, v6 = f"127.0.0.1:{port}", f"[::1]:{port}"
        codes = [stats(v4, client_id=f"client-{n}")[0] for n in range(3)]
        assert codes == [GOT_THROUGH, GOT_THROUGH, grpc.StatusCode.RESOURCE_EXHAUSTED]
        code, _, details = stats(v4)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "rate limit reached for 'ipv4:127.0.0.1'" in details
        assert stats(v6, client_id="client-0")[0] == GOT_THROUGH  # another peer, another bucket


def test_client_id_keys_the_limit_only_when_configured() -> None:
    limit = {"rate_limit_per_s": 0.01, "rate_limit_burst": 1, "rate_limit_key": "client_id"}
    with server(**limit) as port:
        v4 = f"127.0.0.1:{port}"
        assert [stats(v4, client_id="team-a")[0] for _ in range(2)] == [
            GOT_THROUGH,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ]
        assert stats(v4, client_id="team-b")[0] == GOT_THROUGH
        # no client_id: the peer address is the key
        assert [stats(v4)[0] for _ in range(2)] == [
            GOT_THROUGH,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ]


def test_an_authenticated_client_is_limited_by_its_name_not_its_address() -> None:
    limit = {"rate_limit_per_s": 0.01, "rate_limit_burst": 1}
    tokens = SecretStr(f"ci {TOKEN}; bot tok-bot-0123456789")
    with server(auth_tokens=tokens, **limit) as port:
        v4 = f"127.0.0.1:{port}"
        assert stats(v4, TOKEN)[0] == GOT_THROUGH
        code, _, details = stats(v4, TOKEN)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "rate limit reached for 'ci'" in details
        assert stats(v4, "tok-bot-0123456789")[0] == GOT_THROUGH


def test_an_oversized_client_id_never_becomes_a_rate_limit_key() -> None:
    limit = {"rate_limit_per_s": 0.01, "rate_limit_burst": 1, "rate_limit_key": "client_id"}
    with server(**limit) as port:
        code, _, details = stats(f"127.0.0.1:{port}", client_id="x" * 4000)
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "client_id is 4000 characters; the limit is 128" in details
        assert len(details) < 300
