"""`raildebug serve SERVICE`: run one gRPC server in the foreground until SIGTERM.

The flags of each service are generated from its settings model (raildebug/settings.py):
`raildebug serve inference --help` lists inference's. Flags win over RAILDEBUG_* variables,
which win over secret files and defaults.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from apps.cli.settings_flags import add_settings_flags, settings_overrides
from raildebug.observability.logging import configure_logging
from raildebug.settings import (
    SERVICE_SETTINGS,
    InferenceSettings,
    OrchestratorSettings,
    RetrieverSettings,
)
from raildebug.settings_report import build_settings

if TYPE_CHECKING:
    from raildebug.grpc_runtime.server import RailDebugServer

SERVICES = tuple(SERVICE_SETTINGS)


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "serve", help="run one service (retriever, inference, orchestrator)"
    )
    services = parser.add_subparsers(dest="service", required=True, metavar="SERVICE")
    for service, model in SERVICE_SETTINGS.items():
        sub = services.add_parser(
            service,
            allow_abbrev=False,  # --auth-tokens must not mean --auth-tokens-file
            help=f"run the {service} service",
            description=f"Run the {service} service. Each flag wins over the RAILDEBUG_* "
            "variable in its help, which wins over the default; secrets have no flag (set "
            "their variable or a file in RAILDEBUG_SECRETS_DIR). `raildebug config "
            f"{service}` shows the effective values.",
        )
        add_settings_flags(sub, model)
    parser.set_defaults(run=run)


def build(service: str, overrides: dict[str, Any]) -> RailDebugServer:
    """The server of `service`; its settings are `overrides` (flags) over RAILDEBUG_* env,
    secret files and defaults."""
    if service == "retriever":
        from services.retriever.server import build_server as build_retriever

        return build_retriever(build_settings(RetrieverSettings, overrides))
    if service == "inference":
        from services.inference.server import build_server as build_inference

        return build_inference(build_settings(InferenceSettings, overrides))
    from services.orchestrator.server import build_server as build_orchestrator

    return build_orchestrator(build_settings(OrchestratorSettings, overrides))


def run(args: argparse.Namespace) -> int:
    configure_logging(args.service)
    try:
        server = build(args.service, settings_overrides(args))
    except ValidationError as error:
        print(f"raildebug serve {args.service}: invalid settings\n{error}", file=sys.stderr)
        return 2
    server.install_signal_handlers()
    server.start()
    server.wait()
    return 0
