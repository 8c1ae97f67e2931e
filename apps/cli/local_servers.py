"""Weaviate and Jaeger as local processes: for `raildebug up --weaviate --jaeger` and the tests.

Both run from the binaries scripts/build-servers.sh builds (pinned versions, cached outside the
repository); this module knows how each is started on chosen loopback ports and when it is ready.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BIN_CACHE = Path(os.environ.get("RAILDEBUG_BIN_CACHE", Path.home() / ".cache/raildebug/bin"))
WEAVIATE_VERSION = "v1.38.11"
JAEGER_VERSION = "v1.76.0"  # Jaeger v2.13's code, under the module's last v1.x tag
BINARIES = {
    "weaviate": BIN_CACHE / f"weaviate-{WEAVIATE_VERSION}" / "weaviate-server",
    "jaeger": BIN_CACHE / f"jaeger-{JAEGER_VERSION}" / "jaeger",
}
BUILD_SCRIPT = "scripts/build-servers.sh"


class ServerNotBuilt(RuntimeError):
    """The pinned binary is not in the cache; the message says how to build it."""


def binary(name: str) -> Path:
    path = BINARIES[name]
    if not os.access(path, os.X_OK):
        raise ServerNotBuilt(
            f"{name} is not built ({path} is missing); build it with `{BUILD_SCRIPT} {name}` "
            "(needs Go >= 1.24; `make setup` runs it when Go is installed; minutes on 2 cores)"
        )
    return path


def wait_http_ok(url: str, process: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    """Poll `url` until it answers 200; fail early, with the log's tail, if the process exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}:\n{tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} not ready in {timeout_s:.0f}s:\n{tail(log)}")
        time.sleep(0.2)


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


# --- Weaviate -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeaviatePorts:
    """REST, gRPC, then gossip/data and raft/raft-RPC: each pair adjacent, as Weaviate's own
    defaults are (7946/7947, 8300/8301); with scattered ones a single node never elected itself."""

    http: int = 8080
    grpc: int = 50071  # Weaviate's default 50051 is the orchestrator's, 50052-3 ours too
    gossip: int = 7946
    raft: int = 8300


def weaviate_environment(
    data_dir: Path, ports: WeaviatePorts, api_keys: tuple[str, ...] = ()
) -> dict[str, str]:
    """A single node on loopback, no vectorizer module (RailDebug brings its vectors)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(data_dir)),
        "PERSISTENCE_DATA_PATH": str(data_dir / "data"),
        "DEFAULT_VECTORIZER_MODULE": "none",
        "CLUSTER_HOSTNAME": "node1",
        "CLUSTER_IN_LOCALHOST": "true",
        "CLUSTER_GOSSIP_BIND_PORT": str(ports.gossip),
        "CLUSTER_DATA_BIND_PORT": str(ports.gossip + 1),
        "RAFT_BOOTSTRAP_EXPECT": "1",
        "RAFT_PORT": str(ports.raft),
        "RAFT_INTERNAL_RPC_PORT": str(ports.raft + 1),
        "GRPC_PORT": str(ports.grpc),
        "DISABLE_TELEMETRY": "true",
        "GO_PROFILING_DISABLE": "true",
        "PROMETHEUS_MONITORING_ENABLED": "false",
        "LOG_LEVEL": "warning",
    }
    if api_keys:
        env |= {
            "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "false",
            "AUTHENTICATION_APIKEY_ENABLED": "true",
            "AUTHENTICATION_APIKEY_ALLOWED_KEYS": ",".join(api_keys),
            "AUTHENTICATION_APIKEY_USERS": ",".join(f"user{n}" for n in range(len(api_keys))),
        }
    else:
        env["AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED"] = "true"
    return env


def start_weaviate(
    data_dir: Path, ports: WeaviatePorts, api_keys: tuple[str, ...] = (), ready_s: float = 90.0
) -> subprocess.Popen[bytes]:
    """weaviate-server on 127.0.0.1, logging to data_dir/weaviate.log; returns once ready."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "weaviate.log"
    command = [str(binary("weaviate")), "--scheme", "http", "--host", "127.0.0.1"]
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*command, "--port", str(ports.http)],
            env=weaviate_environment(data_dir, ports, api_keys),
            cwd=data_dir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_http_ok(f"http://127.0.0.1:{ports.http}/v1/.well-known/ready", process, ready_s, log)
    return process


# --- Jaeger -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JaegerPorts:
    """Jaeger's own defaults: OTLP gRPC/HTTP in, query HTTP (API and UI) and gRPC out."""

    otlp_grpc: int = 4317
    otlp_http: int = 4318
    query_http: int = 16686
    query_grpc: int = 16685
    health: int = 13133


def jaeger_config(ports: JaegerPorts) -> str:
    """All-in-one with in-memory storage, OTLP receivers only, every port on loopback."""
    return f"""\
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{ports.query_http}
    grpc:
      endpoint: 127.0.0.1:{ports.query_grpc}
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{ports.health}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{ports.otlp_grpc}
      http:
        endpoint: 127.0.0.1:{ports.otlp_http}
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


def start_jaeger(
    data_dir: Path, ports: JaegerPorts, ready_s: float = 60.0
) -> subprocess.Popen[bytes]:
    """Jaeger v2 all-in-one (traces kept in memory); returns once its health check is OK."""
    data_dir.mkdir(parents=True, exist_ok=True)
    config, log = data_dir / "jaeger.yaml", data_dir / "jaeger.log"
    config.write_text(jaeger_config(ports))
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(binary("jaeger")), "--config", str(config)],
            cwd=data_dir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_http_ok(f"http://127.0.0.1:{ports.health}/status", process, ready_s, log)
    return process
