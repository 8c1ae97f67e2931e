"""`raildebug health`: ask a server's grpc.health.v1 status, optionally waiting for SERVING."""

from __future__ import annotations

import argparse
import time
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from raildebug.grpc_runtime.channels import open_channel
from raildebug.settings import ORCHESTRATOR_PORT


def register(commands: Any) -> None:
    parser = commands.add_parser("health", help="check (or wait for) a server's health")
    parser.add_argument("--address", default=f"127.0.0.1:{ORCHESTRATOR_PORT}")
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep asking until SERVING or this many seconds passed",
    )
    parser.set_defaults(run=run)


def serving_status(address: str, timeout_s: float = 2.0) -> str:
    """The overall health status name, or UNREACHABLE."""
    with open_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.RpcError:
            return "UNREACHABLE"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def wait_until_serving(address: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    status = serving_status(address)
    while status != "SERVING" and time.monotonic() < deadline:
        time.sleep(0.25)
        status = serving_status(address)
    return status


def run(args: argparse.Namespace) -> int:
    status = wait_until_serving(args.address, args.wait)
    print(f"{args.address}: {status}")
    return 0 if status == "SERVING" else 1
