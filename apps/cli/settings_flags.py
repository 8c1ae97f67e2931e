"""Command-line flags generated from a settings model: every setting becomes `--field-name`
(a nested group's `--group-field-name`), with the field's description as help, its type from
the annotation, Literals as choices and bools as --x / --no-x. Secrets (SecretStr) get no flag:
they come from the environment or a secret file only."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from raildebug.settings import RailDebugSettings
from raildebug.settings_report import Leaf, leaves, literal_choices

_DEST = "setting__"


def add_settings_flags(parser: argparse.ArgumentParser, model: type[RailDebugSettings]) -> None:
    """Adds one flag per non-secret setting of `model`; unset flags leave the namespace alone."""
    group = parser.add_argument_group(
        "settings", "each flag wins over its environment variable, which wins over the default"
    )
    for leaf in leaves(model):
        if leaf.secret:
            continue
        group.add_argument(
            leaf.flag,
            dest=_DEST + leaf.name.replace(".", "__"),
            default=argparse.SUPPRESS,
            help=_help(leaf),
            **_value_options(leaf),
        )


def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags, by dotted name (`n_ctx`, `openai.base_url`)."""
    return {
        key.removeprefix(_DEST).replace("__", "."): value
        for key, value in vars(args).items()
        if key.startswith(_DEST)
    }


def _value_options(leaf: Leaf) -> dict[str, Any]:
    kind = leaf.kind
    choices = literal_choices(kind)
    if choices:
        return {"choices": list(choices), "type": type(choices[0])}
    if kind is bool:
        return {"action": argparse.BooleanOptionalAction}
    if kind in (int, float, str):
        return {"type": kind, "metavar": _METAVARS[kind]}
    if kind is Path:
        return {"type": Path, "metavar": "PATH"}
    return {"type": _json_value, "metavar": "JSON"}


_METAVARS = {int: "N", float: "X", str: "TEXT"}


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None


def _help(leaf: Leaf) -> str:
    text = f"{leaf.description} [{leaf.variable}; default: {leaf.shown_default()}]"
    return text.replace("%", "%%")  # argparse formats help with %
