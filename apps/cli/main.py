"""`raildebug` entry point: one subcommand per module in this package."""

from __future__ import annotations

import argparse
import sys

from apps.cli import (
    ask,
    config,
    dspy_cmd,
    eval,
    feedback,
    health,
    ingest,
    models,
    prompts,
    serve,
    train,
    up,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raildebug",
        description="Debug railway control-system software with retrieved, grounded answers.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = (
        serve,
        up,
        config,
        ingest,
        ask,
        health,
        eval,
        models,
        prompts,
        feedback,
        train,
        dspy_cmd,
    )
    for module in modules:
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
