"""`raildebug serve SERVICE`: run one gRPC server in the foreground until SIGTERM."""

from __future__ import annotations

import argparse
from typing import Any

from raildebug.grpc_runtime.server import RailDebugServer
from raildebug.observability.logging import configure_logging
from raildebug.settings import InferenceSettings, OrchestratorSettings, RetrieverSettings

SERVICES = ("retriever", "inference", "orchestrator")


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "serve", help="run one service (retriever, inference, orchestrator)"
    )
    parser.add_argument("service", choices=SERVICES)
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (defaults: 50051 / 50052 / 50053)")
    parser.add_argument("--model-path", help="inference: GGUF file (default: packaged Gemma)")
    parser.add_argument("--n-ctx", type=int, help="inference: context length")
    parser.add_argument("--n-threads", type=int, help="inference: CPU threads")
    parser.add_argument("--n-gpu-layers", type=int, help="inference: layers on the GPU (-1 all)")
    parser.add_argument("--store-dir", help="retriever: LanceDB directory")
    parser.add_argument("--retriever-address", help="orchestrator: retriever host:port")
    parser.add_argument("--inference-address", help="orchestrator: inference host:port")
    parser.set_defaults(run=run)


def build(service: str, overrides: dict[str, Any]) -> RailDebugServer:
    """Settings come from RAILDEBUG_* env; flags given on the command line win."""
    given = {key: value for key, value in overrides.items() if value is not None}
    if service == "retriever":
        from services.retriever.server import build_server as build_retriever

        return build_retriever(RetrieverSettings(**_pick(given, RetrieverSettings)))
    if service == "inference":
        from services.inference.server import build_server as build_inference

        return build_inference(InferenceSettings(**_pick(given, InferenceSettings)))
    from services.orchestrator.server import build_server as build_orchestrator

    return build_orchestrator(OrchestratorSettings(**_pick(given, OrchestratorSettings)))


def run(args: argparse.Namespace) -> int:
    configure_logging(args.service)
    server = build(args.service, vars(args))
    server.install_signal_handlers()
    server.start()
    server.wait()
    return 0


def _pick(values: dict[str, Any], settings_type: type) -> dict[str, Any]:
    fields = settings_type.model_fields  # type: ignore[attr-defined]
    return {key: value for key, value in values.items() if key in fields}
