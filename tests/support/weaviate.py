"""A real weaviate-server on free loopback ports, for the Weaviate store's tests.

The binary is built from source by scripts/build-servers.sh (`make setup` runs it when Go is
installed) into ~/.cache/raildebug/bin; without it the tests fail and say how to build it.
Tests that start one are `service` (tests/fixtures/tiers.py).
"""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from apps.cli.local_servers import (
    ServerNotBuilt,
    WeaviatePorts,
    binary,
    start_weaviate,
    tail,
    weaviate_environment,
)
from tests.support.net import free_port

READY_TIMEOUT_S = 90.0


def weaviate_binary() -> Path:
    """The pinned weaviate-server; fails the test (never skips) when it has not been built."""
    try:
        return binary("weaviate")
    except ServerNotBuilt as error:
        pytest.fail(str(error), pytrace=False)


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _server_ports() -> list[int]:
    """http, grpc, then two adjacent pairs: gossip and data, raft and raft RPC, as Weaviate's
    defaults are (7946/7947, 8300/8301). With scattered ports a single node never joined itself
    and elected no leader."""
    ports: list[int] = []
    while len(ports) < 2:
        port = free_port()
        if port not in ports:
            ports.append(port)
    while len(ports) < 6:
        port = free_port()
        if port < 65535 and {port, port + 1}.isdisjoint(ports) and _port_is_free(port + 1):
            ports += [port, port + 1]
    return ports


@dataclass
class WeaviateServer:
    """One weaviate-server process; stop/kill/start keep its ports and data directory."""

    data_dir: Path
    api_keys: Sequence[str] = ()
    ports: list[int] = field(default_factory=_server_ports)
    process: subprocess.Popen[bytes] | None = None

    @property
    def http_port(self) -> int:
        return self.ports[0]

    @property
    def grpc_port(self) -> int:
        return self.ports[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "weaviate.log"

    @property
    def named_ports(self) -> WeaviatePorts:
        http, grpc, gossip, _, raft, _ = self.ports
        return WeaviatePorts(http=http, grpc=grpc, gossip=gossip, raft=raft)

    def environment(self) -> dict[str, str]:
        return weaviate_environment(self.data_dir, self.named_ports, tuple(self.api_keys))

    def start(self) -> None:
        """Start the process and wait for /v1/.well-known/ready."""
        weaviate_binary()
        try:
            self.process = start_weaviate(
                self.data_dir, self.named_ports, tuple(self.api_keys), READY_TIMEOUT_S
            )
        except RuntimeError as error:
            raise AssertionError(str(error)) from None

    def log_tail(self, chars: int = 3000) -> str:
        return tail(self.log_path, chars)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """kill -9: no shutdown, whatever it had in memory and not on disk is gone."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()

    @contextmanager
    def client(self, api_key: str | None = None) -> Iterator[Any]:
        """A plain weaviate client on this server, to look at what a store wrote."""
        import weaviate
        from weaviate.classes.init import Auth

        client = weaviate.connect_to_custom(
            http_host="127.0.0.1",
            http_port=self.http_port,
            http_secure=False,
            grpc_host="127.0.0.1",
            grpc_port=self.grpc_port,
            grpc_secure=False,
            auth_credentials=Auth.api_key(api_key) if api_key else None,
            skip_init_checks=True,
        )
        try:
            yield client
        finally:
            client.close()


@contextmanager
def weaviate_server(data_dir: Path, *, api_keys: Sequence[str] = ()) -> Iterator[WeaviateServer]:
    """A started weaviate-server on free loopback ports; killed on exit."""
    server = WeaviateServer(data_dir, api_keys=api_keys)
    try:
        server.start()
        yield server
    finally:
        server.stop()
