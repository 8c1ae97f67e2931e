"""TLS on the service port and plaintext kubelet probes together: `health_port` serves
grpc.health.v1, in plaintext, and nothing else, from the same health state as the main port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from raildebug.grpc_runtime.channels import open_channel
from raildebug.grpc_runtime.security import ChannelSecurity
from raildebug.grpc_runtime.server import CoreHolder, RailDebugServer
from raildebug.settings import RetrieverSettings
from raildebug.v1 import retriever_pb2, retriever_pb2_grpc
from services.retriever.index import RetrievalIndex
from services.retriever.server import SERVICE_NAME, RetrieverServicer
from tests.support.certs import Pki, make_pki
from tests.support.net import free_port

pytestmark = pytest.mark.service


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


@pytest.fixture
def server(pki: Pki) -> Iterator[RailDebugServer]:
    """A TLS-only retriever server whose store never loads (so no model is needed)."""
    settings = RetrieverSettings(
        port=free_port(),
        health_port=free_port(),
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
    )
    server = RailDebugServer(settings, [SERVICE_NAME])
    index: CoreHolder[RetrievalIndex] = CoreHolder("retrieval store")
    retriever_pb2_grpc.add_RetrieverServicer_to_server(RetrieverServicer(index), server.grpc_server)
    server.start()
    try:
        yield server
    finally:
        server.stop(grace_s=0)


def _check(channel: grpc.Channel, service: str = "") -> str:
    response = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=5
    )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def _code(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as failed:
        call()
    return failed.value.code()


def test_the_health_port_answers_plaintext_probes_while_the_service_port_is_tls_only(
    server: RailDebugServer, pki: Pki
) -> None:
    health = f"127.0.0.1:{server.health_port}"
    main = f"127.0.0.1:{server.port}"
    with grpc.insecure_channel(health) as probe:  # what the kubelet's grpc probe does
        assert _check(probe) == "SERVING"
        assert _check(probe, SERVICE_NAME) == "SERVING"
        assert _code(lambda: _check(probe, "raildebug.v1.Nope")) == grpc.StatusCode.NOT_FOUND
        # nothing but health: no service methods, no reflection
        stats = retriever_pb2_grpc.RetrieverStub(probe).Stats
        assert _code(lambda: stats(retriever_pb2.StatsRequest(), timeout=5)) == (
            grpc.StatusCode.UNIMPLEMENTED
        )
        reflect = reflection_pb2_grpc.ServerReflectionStub(probe).ServerReflectionInfo
        listing = reflection_pb2.ServerReflectionRequest(list_services="")
        assert _code(lambda: list(reflect(iter([listing]), timeout=5))) == (
            grpc.StatusCode.UNIMPLEMENTED
        )
    with grpc.insecure_channel(main) as plaintext:  # the service port stays TLS only
        assert _code(lambda: _check(plaintext)) == grpc.StatusCode.UNAVAILABLE
    with open_channel(main, ChannelSecurity(ca_file=pki.ca)) as tls:
        assert _check(tls) == "SERVING"
        stats = retriever_pb2_grpc.RetrieverStub(tls).Stats
        assert _code(lambda: stats(retriever_pb2.StatsRequest(), timeout=5)) == (
            grpc.StatusCode.UNAVAILABLE  # the store is "still loading"
        )


def test_the_health_port_follows_the_drain(server: RailDebugServer) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.health_port}") as probe:
        assert _check(probe) == "SERVING"
        server._health.enter_graceful_shutdown()  # what stop() does first, on SIGTERM
        assert _check(probe) == "NOT_SERVING"
        assert _check(probe, SERVICE_NAME) == "NOT_SERVING"
