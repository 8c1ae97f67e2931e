"""`raildebug config [SERVICE]`: the effective settings and where each value came from.

`raildebug config inference --n-ctx 4096` shows what `raildebug serve inference --n-ctx 4096`
would run with: every setting's value and its source (flag, environment variable, secret file,
default). Secrets are masked. `--json` for machines, `--markdown` for README's table.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pydantic import ValidationError

from apps.cli.settings_flags import add_settings_flags, settings_overrides
from raildebug.settings import (
    SERVICE_SETTINGS,
    ClientSettings,
    CommonSettings,
    DspySettings,
    LogSettings,
    RailDebugSettings,
)
from raildebug.settings_report import Explained, display, explain, markdown_table

SHARED: tuple[type[RailDebugSettings], ...] = (CommonSettings, LogSettings)
# Models a service reads besides its own (and SHARED).
ALSO_READS: dict[str, tuple[type[RailDebugSettings], ...]] = {"orchestrator": (DspySettings,)}


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "config",
        help="show effective settings and their sources",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _output_flags(parser, default=False)
    services = parser.add_subparsers(dest="service", metavar="SERVICE")
    for service, model in SERVICE_SETTINGS.items():
        sub = services.add_parser(
            service,
            allow_abbrev=False,  # --auth-tokens must not mean --auth-tokens-file
            help=f"the settings of `raildebug serve {service}`",
            description=f"The settings `raildebug serve {service}` would run with; it takes "
            "the same flags.",
        )
        _output_flags(sub, default=argparse.SUPPRESS)
        add_settings_flags(sub, model)
    parser.set_defaults(run=run, service=None)


def _output_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    # Given before or after SERVICE; the subcommand's copy must not reset the other's value.
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", default=default, help="print JSON")
    output.add_argument(
        "--markdown",
        action="store_true",
        default=default,
        help="print README's Configure table (python -m raildebug.settings_report updates it)",
    )


def sections(
    service: str | None, overrides: dict[str, Any] | None = None
) -> dict[str, list[Explained]]:
    """Section name -> explained settings; flags (`overrides`) apply to `service`'s model."""
    if service is None:
        models: list[tuple[str, type[RailDebugSettings], dict[str, Any]]] = [
            *((_section_name(m), m, {}) for m in SHARED),
            *((name, model, {}) for name, model in SERVICE_SETTINGS.items()),
            (_section_name(DspySettings), DspySettings, {}),
            (_section_name(ClientSettings), ClientSettings, {}),
        ]
    else:
        models = [
            *((_section_name(m), m, {}) for m in SHARED),
            (service, SERVICE_SETTINGS[service], overrides or {}),
            *((_section_name(m), m, {}) for m in ALSO_READS.get(service, ())),
        ]
    return {name: explain(model, given) for name, model, given in models}


def _section_name(model: type[RailDebugSettings]) -> str:
    return model.__name__.removesuffix("Settings").lower()


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown_table(), end="")
        return 0
    try:
        found = sections(args.service, settings_overrides(args))
    except ValidationError as error:
        print(f"raildebug config: invalid settings\n{error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({name: [row.as_json() for row in rows] for name, rows in found.items()}))
        return 0
    print(render(found), end="")
    return 0


def render(found: dict[str, list[Explained]]) -> str:
    lines: list[str] = []
    for name, rows in found.items():
        lines.append(f"[{name}]")
        width = max(len(row.leaf.name) for row in rows)
        values = [display(row.value) for row in rows]
        value_width = min(max(len(value) for value in values), 48)
        for row, value in zip(rows, values, strict=True):
            lines.append(f"  {row.leaf.name:<{width}}  {value:<{value_width}}  {row.source}")
        lines.append("")
    return "\n".join(lines)
