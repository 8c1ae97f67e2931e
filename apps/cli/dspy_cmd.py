"""`raildebug dspy compile|list|show`: compiled rail-fix DSPy programs and their versions."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from raildebug.errors import RailDebugError
from raildebug.settings import DspySettings


def register(commands: Any) -> None:
    parser = commands.add_parser("dspy", help="compile, list and inspect DSPy rail-fix programs")
    parser.add_argument(
        "--programs-dir",
        type=Path,
        default=None,
        help="where compiled programs are written and read (default RAILDEBUG_DSPY_PROGRAMS_DIR)",
    )
    actions = parser.add_subparsers(dest="dspy_command", required=True, metavar="ACTION")
    compile_parser = actions.add_parser(
        "compile", help="optimize the program against the served model and save a new version"
    )
    compile_parser.add_argument("--config", type=Path, required=True, help="compile YAML file")
    compile_parser.add_argument(
        "--inference", default="", help="inference address (overrides the config)"
    )
    compile_parser.add_argument(
        "--retriever", default="", help="retriever address (overrides the config)"
    )
    compile_parser.set_defaults(run=_compile)
    list_parser = actions.add_parser("list", help="compiled programs, one version per line")
    list_parser.set_defaults(run=_list)
    show_parser = actions.add_parser("show", help="manifest and prompt of one compiled version")
    show_parser.add_argument("program", help="name@version, or name for the latest version")
    show_parser.set_defaults(run=_show)


def _store(args: argparse.Namespace) -> Any:
    from services.orchestrator.analyzers.dspy.artifacts import ProgramStore

    return ProgramStore(args.programs_dir or DspySettings().programs_dir)


def _compile(args: argparse.Namespace) -> int:
    from training.dspy.compiler import CompileConfig, compile_program

    try:
        config = CompileConfig.from_yaml(args.config)
        overrides = {
            key: value
            for key, value in (
                ("inference_address", args.inference),
                ("retriever_address", args.retriever),
            )
            if value
        }
        report = compile_program(config.model_copy(update=overrides), _store(args))
    except RailDebugError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(report.table())
    return 0


def _list(args: argparse.Namespace) -> int:
    manifests = _store(args).list()
    if not manifests:
        print("no compiled programs yet: run `raildebug dspy compile --config FILE`")
        return 0
    print(f"{'program':<22} {'uncompiled':>10} {'compiled':>9}  {'model':<24} created")
    for m in manifests:
        print(
            f"{m.ref:<22} {m.scores['uncompiled']:>10.3f} {m.scores['compiled']:>9.3f}  "
            f"{m.model:<24} {m.created_at}"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    try:
        stored = _store(args).get(args.program)
    except RailDebugError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"path": str(stored.path), **asdict(stored.manifest)}, indent=2))
    generate = stored.state.get("generate", {})
    signature = generate.get("signature", {})
    print(f"\ninstructions: {signature.get('instructions', '')}")
    for number, demo in enumerate(generate.get("demos", []), start=1):
        print(
            f"\n--- demo {number} ---\nquery: {demo.get('query', '')}\nfix: {demo.get('fix', '')}"
        )
    return 0
