"""A real Jaeger v2 all-in-one on free loopback ports, and reading traces back from its query API.

The binary is built by scripts/build-servers.sh (`make setup` runs it when Go is installed);
without it the test fails and says how to build it.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from apps.cli.local_servers import JaegerPorts, ServerNotBuilt, binary, start_jaeger
from tests.support.net import free_port


@dataclass
class JaegerServer:
    ports: JaegerPorts
    process: subprocess.Popen[bytes]

    @property
    def otlp_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports.otlp_grpc}"

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """GET /api/traces/{id}: the trace as Jaeger's query API returns it, None if unknown."""
        url = f"http://127.0.0.1:{self.ports.query_http}/api/traces/{trace_id}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                data = json.load(response).get("data") or []
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise
        return data[0] if data else None

    def wait_for_spans(
        self, trace_id: str, names: set[str], timeout_s: float = 30.0
    ) -> dict[str, Any]:
        """The trace once it holds spans with all `names` (exporters batch; give them time)."""
        deadline = time.monotonic() + timeout_s
        trace: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            trace = self.trace(trace_id)
            if trace is not None and names <= {s["operationName"] for s in trace["spans"]}:
                return trace
            time.sleep(0.3)
        found = sorted({s["operationName"] for s in trace["spans"]}) if trace else []
        raise AssertionError(f"trace {trace_id} lacks {sorted(names - set(found))}; has {found}")


def tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span.get("tags", [])}


@contextmanager
def jaeger_server(data_dir: Path) -> Iterator[JaegerServer]:
    try:
        binary("jaeger")
    except ServerNotBuilt as error:
        pytest.fail(str(error), pytrace=False)
    ports = JaegerPorts(
        otlp_grpc=free_port(),
        otlp_http=free_port(),
        query_http=free_port(),
        query_grpc=free_port(),
        health=free_port(),
    )
    process = start_jaeger(data_dir, ports)
    try:
        yield JaegerServer(ports, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
