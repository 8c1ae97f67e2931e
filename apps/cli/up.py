"""`raildebug up`: run retriever, inference and orchestrator as separate local processes."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from apps.cli.health import wait_until_serving
from apps.cli.local_servers import (
    JaegerPorts,
    ServerNotBuilt,
    WeaviatePorts,
    start_jaeger,
    start_weaviate,
)
from raildebug.settings import SERVICE_SETTINGS, CommonSettings

# Start order: the orchestrator last, so its upstreams are already listening.
_ORDER = ("retriever", "inference", "orchestrator")


def register(commands: Any) -> None:
    parser = commands.add_parser("up", help="start all three services on loopback")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface all three bind and the orchestrator dials (default: %(default)s)",
    )
    for service in _ORDER:
        parser.add_argument(
            f"--{service}-port",
            type=int,
            default=None,
            help=f"default: RAILDEBUG_{service.upper()}_PORT, else the {service}'s default port",
        )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="stores, model cache, feedback and logs (RAILDEBUG_DATA_DIR)",
    )
    parser.add_argument(
        "--weaviate",
        action="store_true",
        help="also run a local weaviate-server (REST 8080, gRPC 50071; data in DATA_DIR/weaviate) "
        "and point the retriever at it (store_backend=weaviate)",
    )
    parser.add_argument(
        "--jaeger",
        action="store_true",
        help="also run Jaeger all-in-one (OTLP in on 4317, traces in memory) and export every "
        "service's traces to it; read them at http://127.0.0.1:16686/api/traces?service=...",
    )
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.set_defaults(run=run)


def service_ports(args: argparse.Namespace) -> dict[str, int]:
    """Each service's port: its flag, else its settings (RAILDEBUG_<SERVICE>_PORT, default)."""
    ports = {}
    for service in _ORDER:
        flag = getattr(args, f"{service}_port")
        ports[service] = flag if flag is not None else SERVICE_SETTINGS[service]().port
    return ports


def service_environment(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    if args.data_dir is not None:
        env["RAILDEBUG_DATA_DIR"] = str(args.data_dir)
    ports = service_ports(args)
    for service, port in ports.items():
        env[f"RAILDEBUG_{service.upper()}_HOST"] = args.host
        env[f"RAILDEBUG_{service.upper()}_PORT"] = str(port)
    env["RAILDEBUG_ORCHESTRATOR_RETRIEVER_ADDRESS"] = f"{args.host}:{ports['retriever']}"
    env["RAILDEBUG_ORCHESTRATOR_INFERENCE_ADDRESS"] = f"{args.host}:{ports['inference']}"
    return env


def run(args: argparse.Namespace) -> int:
    try:
        env = service_environment(args)
    except ValidationError as error:
        print(f"raildebug up: invalid settings\n{error}", file=sys.stderr)
        return 2
    log_dir = (args.data_dir or CommonSettings().data_dir) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop_all(signum: int = signal.SIGTERM, _frame: object = None) -> None:
        nonlocal stopping
        stopping = True
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    data_dir = args.data_dir or CommonSettings().data_dir
    try:
        processes |= _start_companions(args, data_dir, env)
    except (ServerNotBuilt, RuntimeError) as error:
        print(f"raildebug up: {error}", file=sys.stderr)
        stop_all()
        _wait_all(processes)
        return 1
    for service in _ORDER:
        log_file = (log_dir / f"{service}.log").open("ab")
        processes[service] = subprocess.Popen(
            [sys.executable, "-m", "apps.cli.main", "serve", service],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        print(
            f"started {service} (pid {processes[service].pid}), logs in {log_file.name}",
            file=sys.stderr,
        )
    for service in _ORDER:
        address = f"{args.host}:{env[f'RAILDEBUG_{service.upper()}_PORT']}"
        status = wait_until_serving(address, args.ready_timeout)
        if status != "SERVING":
            print(
                f"{service} at {address} is {status}; see {log_dir / (service + '.log')}",
                file=sys.stderr,
            )
            stop_all()
            _wait_all(processes)
            return 1
        print(f"{service} ready at {address}", file=sys.stderr)
    print(
        f"RailDebug is up: orchestrator at {args.host}:{env['RAILDEBUG_ORCHESTRATOR_PORT']}",
        flush=True,
    )
    while not stopping:
        for service, process in processes.items():
            if process.poll() is not None:
                print(
                    f"{service} exited with {process.returncode}; stopping the others",
                    file=sys.stderr,
                )
                stop_all()
                break
        time.sleep(0.5)
    return _wait_all(processes)


def _start_companions(
    args: argparse.Namespace, data_dir: Path, env: dict[str, str]
) -> dict[str, subprocess.Popen[bytes]]:
    """Weaviate and Jaeger when asked for, started before the services that use them; `env`
    (the services' environment) is pointed at them."""
    started: dict[str, subprocess.Popen[bytes]] = {}
    if args.jaeger:
        ports = JaegerPorts()
        started["jaeger"] = start_jaeger(data_dir / "jaeger", ports)
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{ports.otlp_grpc}"
        env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc"
        print(
            f"jaeger ready: traces at http://127.0.0.1:{ports.query_http}/api/traces"
            "?service=raildebug-orchestrator",
            file=sys.stderr,
        )
    if args.weaviate:
        weaviate = WeaviatePorts()
        started["weaviate"] = start_weaviate(data_dir / "weaviate", weaviate)
        env["RAILDEBUG_RETRIEVER_STORE_BACKEND"] = "weaviate"
        env["RAILDEBUG_RETRIEVER_WEAVIATE_URL"] = f"http://127.0.0.1:{weaviate.http}"
        env["RAILDEBUG_RETRIEVER_WEAVIATE_GRPC_PORT"] = str(weaviate.grpc)
        print(f"weaviate ready at http://127.0.0.1:{weaviate.http}", file=sys.stderr)
    return started


def _wait_all(processes: dict[str, subprocess.Popen[bytes]], grace_s: float = 30.0) -> int:
    deadline = time.monotonic() + grace_s
    worst = 0
    for process in processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        worst = max(worst, abs(process.returncode or 0))
    return worst
