"""`raildebug prompts list|show|create|label|rollback|diff|push|pull`: govern the prompt registry.

Works on the registry the orchestrator serves from (RAILDEBUG_ORCHESTRATOR_PROMPT_REGISTRY_DIR,
default $RAILDEBUG_DATA_DIR/prompts). Every change is written to the audit log with who made it
and why; a running orchestrator picks label moves up on its next request. `push --to langfuse`
and `pull --from langfuse` sync versions, labels and messages with the Langfuse project of
RAILDEBUG_ORCHESTRATOR_LANGFUSE_HOST / _PUBLIC_KEY / _SECRET_KEY (and log who synced what).
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path
from typing import Any

from raildebug.errors import RailDebugError
from raildebug.settings import OrchestratorSettings
from services.orchestrator import langfuse_prompts
from services.orchestrator.prompt_registry import PromptRegistry


def register(commands: Any) -> None:
    parser = commands.add_parser("prompts", help="list, create, label and roll back prompts")
    parser.add_argument("--registry", type=Path, help="registry directory (default: settings)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="prompts, or one prompt's versions and labels")
    listing.add_argument("name", nargs="?")
    listing.add_argument("--history", action="store_true", help="also show the audit log")

    show = actions.add_parser("show", help="print a version (or the one a label points to)")
    show.add_argument("name")
    show.add_argument("ref", help="version number or label")

    create = actions.add_parser("create", help="add the next version from a template file")
    create.add_argument("name")
    create.add_argument("file", type=Path, help="TOML with stop, max_context_chars, template")
    create.add_argument("-m", "--message", required=True, help="what changed and why")

    label = actions.add_parser("label", help="point a label at a version")
    label.add_argument("name")
    label.add_argument("version", type=int)
    label.add_argument("label", help="production, staging, dev or a custom label")
    label.add_argument("--reason", required=True, help="recorded in the audit log")

    rollback = actions.add_parser("rollback", help="move a label back to its previous version")
    rollback.add_argument("name")
    rollback.add_argument("label")
    rollback.add_argument("--reason", required=True, help="recorded in the audit log")

    diff = actions.add_parser("diff", help="unified diff of two versions (or labels)")
    diff.add_argument("name")
    diff.add_argument("old", help="version number or label")
    diff.add_argument("new", help="version number or label")

    push = actions.add_parser(
        "push", help="copy versions and labels to Langfuse (same numbers and messages)"
    )
    push.add_argument("name")
    push.add_argument("--to", dest="target", choices=["langfuse"], required=True)
    pull = actions.add_parser(
        "pull", help="copy versions and labels from Langfuse (same numbers and messages)"
    )
    pull.add_argument("name")
    pull.add_argument("--from", dest="source", choices=["langfuse"], required=True)

    for sub in (create, label, rollback, push, pull):
        sub.add_argument("--actor", default=_whoami(), help="who makes the change")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    directory = args.registry or OrchestratorSettings().prompt_registry_dir
    registry = PromptRegistry(directory)
    try:
        _ACTIONS[args.action](registry, args)
    except RailDebugError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        registry.close()
    return 0


def _list(registry: PromptRegistry, args: argparse.Namespace) -> None:
    if not args.name:
        for name in registry.names():
            labels = ", ".join(f"{lb}→{v}" for lb, v in registry.labels(name).items())
            print(f"{name}  ({labels})")
        return
    for version in registry.versions(args.name):
        labels = f"  [{', '.join(version.labels)}]" if version.labels else ""
        print(
            f"{args.name}@{version.version}  {_when(version.created_at)}  {version.author}: "
            f"{version.message}{labels}"
        )
    if args.history:
        print("\nhistory:")
        for entry in registry.history(args.name):
            moved = (
                f"{entry.label}: {entry.previous_version} → {entry.version}"
                if entry.label
                else f"version {entry.version}"
            )
            print(f"  {_when(entry.at)}  {entry.actor}  {entry.action}  {moved}  ({entry.reason})")


def _show(registry: PromptRegistry, args: argparse.Namespace) -> None:
    print(registry.body(args.name, _version(registry, args.name, args.ref)), end="")


def _create(registry: PromptRegistry, args: argparse.Namespace) -> None:
    body = args.file.read_text(encoding="utf-8")
    version = registry.create(args.name, body, args.actor, args.message)
    print(
        f"created {args.name}@{version}; serve it with: raildebug prompts label "
        f"{args.name} {version} staging --reason ..."
    )


def _label(registry: PromptRegistry, args: argparse.Namespace) -> None:
    registry.set_label(args.name, args.label, args.version, args.actor, args.reason)
    print(f"{args.name}: {args.label} → {args.version}")


def _rollback(registry: PromptRegistry, args: argparse.Namespace) -> None:
    version = registry.rollback(args.name, args.label, args.actor, args.reason)
    print(f"{args.name}: {args.label} rolled back to {version}")


def _diff(registry: PromptRegistry, args: argparse.Namespace) -> None:
    old = _version(registry, args.name, args.old)
    new = _version(registry, args.name, args.new)
    print(registry.diff(args.name, old, new) or f"{args.name}@{old} and @{new} are identical")


def _push(registry: PromptRegistry, args: argparse.Namespace) -> None:
    settings = OrchestratorSettings()
    client = langfuse_prompts.connect_from(settings)
    report = langfuse_prompts.push(registry, client, args.name, args.actor, settings.langfuse_host)
    print("\n".join(report.lines(args.name, "langfuse")))


def _pull(registry: PromptRegistry, args: argparse.Namespace) -> None:
    settings = OrchestratorSettings()
    client = langfuse_prompts.connect_from(settings)
    report = langfuse_prompts.pull(registry, client, args.name, args.actor, settings.langfuse_host)
    print("\n".join(report.lines(args.name, "local")))


def _version(registry: PromptRegistry, name: str, ref: str) -> int:
    if ref.isdigit():
        return int(ref)
    return registry.resolve(name, ref).version


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _whoami() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


_ACTIONS = {
    "list": _list,
    "show": _show,
    "create": _create,
    "label": _label,
    "rollback": _rollback,
    "diff": _diff,
    "push": _push,
    "pull": _pull,
}
