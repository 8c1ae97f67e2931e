"""Guardrails on real servers: bearer-token auth, TLS and mutual TLS, and the per-client rate
limit shared through a real Redis by two orchestrator processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from raildebug.grpc_runtime.channels import open_channel
from raildebug.grpc_runtime.security import ChannelSecurity
from raildebug.grpc_runtime.server import RailDebugServer
from raildebug.settings import OrchestratorSettings
from raildebug.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from services.orchestrator.server import build_server
from tests.support.certs import Pki, make_pki
from tests.support.processes import StartService
from tests.support.servers import free_port, redis_server

pytestmark = pytest.mark.e2e

TOKENS = "ci tok-ci-0123456789; viewer tok-viewer-987 /raildebug.v1.Orchestrator/Feedback"


def _orchestrator(tmp_path: Path, **fields: Any) -> RailDebugServer:
    """Upstreams are not needed: every call here is decided before the pipeline runs."""
    settings = OrchestratorSettings(
        port=free_port(),
        retriever_address=f"127.0.0.1:{free_port()}",
        inference_address=f"127.0.0.1:{free_port()}",
        feedback_db=tmp_path / "feedback.sqlite3",
        prompt_registry_dir=tmp_path / "prompts",
        **fields,
    )
    server = build_server(settings)
    server.start()
    return server


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


def _feedback_code(address: str, security: ChannelSecurity | None = None) -> grpc.StatusCode:
    """Feedback for an unknown request id: NOT_FOUND means the call got through to the core."""
    with open_channel(address, security or ChannelSecurity()) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        try:
            stub.Feedback(orchestrator_pb2.FeedbackRequest(request_id="x", score=1), timeout=10)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def _debug_error(address: str, security: ChannelSecurity) -> grpc.RpcError:
    with open_channel(address, security) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        with pytest.raises(grpc.RpcError) as failed:
            list(stub.Debug(orchestrator_pb2.DebugRequest(question="E73-B"), timeout=10))
    return failed.value


def test_tokens_are_required_scoped_and_never_logged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = _orchestrator(tmp_path, auth_tokens=SecretStr(TOKENS))
    address = f"127.0.0.1:{server.port}"
    try:
        missing = _debug_error(address, ChannelSecurity())
        assert missing.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "authorization: Bearer" in (missing.details() or "")
        wrong = _debug_error(address, ChannelSecurity(token="tok-guess"))
        assert wrong.code() == grpc.StatusCode.UNAUTHENTICATED
        scoped = _debug_error(address, ChannelSecurity(token="tok-viewer-987"))
        assert scoped.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "'viewer' may not call /raildebug.v1.Orchestrator/Debug" in (scoped.details() or "")

        assert _feedback_code(address, ChannelSecurity(token="tok-viewer-987")) == (
            grpc.StatusCode.NOT_FOUND
        )
        assert _feedback_code(address, ChannelSecurity(token="tok-ci-0123456789")) == (
            grpc.StatusCode.NOT_FOUND
        )
        with open_channel(address, ChannelSecurity()) as channel:  # probes need no token
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        server.stop(grace_s=0)
    captured = capsys.readouterr()
    logged = captured.out + captured.err
    assert "UNAUTHENTICATED" in logged and "PERMISSION_DENIED" in logged, "rejections are logged"
    assert "tok-" not in logged, "tokens must never reach the logs"


def test_tls_server_refuses_plaintext_and_accepts_clients_trusting_its_ca(
    tmp_path: Path, pki: Pki
) -> None:
    server = _orchestrator(tmp_path, tls_cert_file=pki.server_cert, tls_key_file=pki.server_key)
    address = f"127.0.0.1:{server.port}"
    try:
        assert _feedback_code(address, ChannelSecurity(ca_file=pki.ca)) == grpc.StatusCode.NOT_FOUND
        assert _feedback_code(address) == grpc.StatusCode.UNAVAILABLE
        assert _feedback_code(address, ChannelSecurity(ca_file=pki.other_ca)) == (
            grpc.StatusCode.UNAVAILABLE
        )
    finally:
        server.stop(grace_s=0)


def test_mutual_tls_requires_a_client_certificate_from_the_trusted_ca(
    tmp_path: Path, pki: Pki
) -> None:
    server = _orchestrator(
        tmp_path,
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
        tls_client_ca_file=pki.ca,
    )
    address = f"127.0.0.1:{server.port}"
    try:
        with_cert = ChannelSecurity(
            ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key
        )
        assert _feedback_code(address, with_cert) == grpc.StatusCode.NOT_FOUND
        assert _feedback_code(address, ChannelSecurity(ca_file=pki.ca)) == (
            grpc.StatusCode.UNAVAILABLE
        )
    finally:
        server.stop(grace_s=0)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    with redis_server(tmp_path) as url:
        yield url


def test_rate_limit_is_shared_by_two_orchestrator_processes_through_redis(
    start_service: StartService, redis_url: str
) -> None:
    limits = {
        "retriever_address": f"127.0.0.1:{free_port()}",
        "inference_address": f"127.0.0.1:{free_port()}",
        "rate_limit_per_s": "0.05",
        "rate_limit_burst": "3",
        "rate_limit_redis_url": redis_url,
        # No authentication here: count by the declared client_id (the default, the peer
        # address, would put team-a and team-b, both on loopback, in one bucket).
        "rate_limit_key": "client_id",
    }
    replicas = [start_service("orchestrator", **limits) for _ in range(2)]
    stubs = [orchestrator_pb2_grpc.OrchestratorStub(r.channel()) for r in replicas]

    def feedback(replica: int, client: str) -> grpc.StatusCode:
        request = orchestrator_pb2.FeedbackRequest(request_id="x", score=1, client_id=client)
        with pytest.raises(grpc.RpcError) as refused:
            stubs[replica].Feedback(request, timeout=10)
        limited = refused.value
        if limited.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            trailing = dict(limited.trailing_metadata() or ())
            assert 10_000 <= int(trailing["retry-after-ms"]) <= 20_000  # 1 token at 0.05/s
            assert "rate limit reached for 'team-a'" in (limited.details() or "")
        return limited.code()

    # Three calls of the burst spread over both replicas, then both refuse the fourth.
    assert [feedback(n % 2, "team-a") for n in range(3)] == [grpc.StatusCode.NOT_FOUND] * 3
    assert feedback(1, "team-a") == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert feedback(0, "team-a") == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert feedback(0, "team-b") == grpc.StatusCode.NOT_FOUND  # other clients are not affected
    for replica in replicas:
        replica.stop()
