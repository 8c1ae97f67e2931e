"""The settings models seen from outside: every leaf setting with its variable and flag, the
effective values and where each came from, and the README table generated from the models.

    python -m raildebug.settings_report            # rewrite the table in README.md
    python -m raildebug.settings_report --check    # fail if README.md's table is stale (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from raildebug.settings import (
    DOCUMENTED_SETTINGS,
    RailDebugSettings,
    secrets_directory,
)

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN = "<!-- settings:begin -->"
END = "<!-- settings:end -->"
MASK = "****"
UNSET = "(unset)"

SettingsT = TypeVar("SettingsT", bound=RailDebugSettings)


@dataclass(frozen=True)
class Leaf:
    """One setting: `name` is dotted for a nested group (openai.base_url)."""

    name: str
    variable: str
    field: FieldInfo
    owner: type[RailDebugSettings]

    @property
    def flag(self) -> str:
        return "--" + self.name.replace(".", "-").replace("_", "-")

    @property
    def kind(self) -> Any:
        """The annotation without `| None`."""
        return optional_inner(self.field.annotation)

    @property
    def secret(self) -> bool:
        return self.kind is SecretStr

    @property
    def optional(self) -> bool:
        return optional_inner(self.field.annotation) is not self.field.annotation

    @property
    def description(self) -> str:
        return self.field.description or ""

    def shown_default(self) -> str:
        """The default as docs show it: computed defaults by their `shown_default` text."""
        extra = self.field.json_schema_extra
        if isinstance(extra, dict) and "shown_default" in extra:
            return str(extra["shown_default"])
        default = self.field.default
        if default is PydanticUndefined:
            factory = self.field.default_factory
            default = factory() if factory is not None else None  # type: ignore[call-arg]
        return display(default)


def optional_inner(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        inner = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(inner) == 1:
            return inner[0]
    return annotation


def group_type(annotation: Any) -> type[RailDebugSettings] | None:
    """The settings model of a nested group field (InferenceSettings.openai), else None."""
    kind = optional_inner(annotation)
    if isinstance(kind, type) and issubclass(kind, RailDebugSettings):
        return kind
    return None


def prefix_of(model: type[RailDebugSettings]) -> str:
    return str(model.model_config.get("env_prefix") or "")


def leaves(model: type[RailDebugSettings], *, nested: bool = True) -> Iterator[Leaf]:
    """Every setting of `model`; nested groups (with their own prefix) unless `nested=False`."""
    for name, field in model.model_fields.items():
        group = group_type(field.annotation)
        if group is None:
            yield Leaf(name, prefix_of(model) + name.upper(), field, model)
        elif nested:
            for leaf in leaves(group):
                yield Leaf(f"{name}.{leaf.name}", leaf.variable, leaf.field, leaf.owner)


def build_settings(model: type[SettingsT], overrides: Mapping[str, Any]) -> SettingsT:
    """`model` from `overrides` (dotted names, e.g. from flags) over env, files and defaults.

    A nested group is instantiated on its own, so its variables still apply to the fields no
    override names.
    """
    own: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for name, value in overrides.items():
        head, _, rest = name.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            own[head] = value
    for head, values in nested.items():
        group = group_type(model.model_fields[head].annotation)
        if group is None:
            raise KeyError(f"{model.__name__}.{head} is not a settings group")
        own[head] = build_settings(group, values)
    return model(**own)


@dataclass(frozen=True)
class Explained:
    """An effective value and where it came from."""

    leaf: Leaf
    value: Any  # JSON-ready, secrets masked
    source: str  # "default", "flag --x", "env RAILDEBUG_X", "secret file /run/secrets/X"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.leaf.name,
            "variable": self.leaf.variable,
            "flag": None if self.leaf.secret else self.leaf.flag,
            "value": self.value,
            "source": self.source,
            "secret": self.leaf.secret,
        }


def explain(
    model: type[RailDebugSettings], overrides: Mapping[str, Any] | None = None
) -> list[Explained]:
    """The effective settings of `model` (built as `raildebug serve` builds them), per leaf.

    The source is decided in the order pydantic-settings reads them: flag (init argument),
    environment variable, secret file in $RAILDEBUG_SECRETS_DIR, default.
    """
    overrides = dict(overrides or {})
    settings = build_settings(model, overrides)
    environment = {key.lower(): key for key in os.environ}
    secrets_dir = secrets_directory()
    rows = []
    for leaf in leaves(model):
        value: Any = settings
        for part in leaf.name.split("."):
            value = getattr(value, part)
        if leaf.name in overrides:
            source = f"flag {leaf.flag}"
        elif leaf.variable.lower() in environment:
            source = f"env {environment[leaf.variable.lower()]}"
        elif (secret_file := _secret_file(secrets_dir, leaf.variable)) is not None:
            source = f"secret file {secret_file}"
        else:
            source = "default"
        rows.append(Explained(leaf, jsonable(value), source))
    return rows


def _secret_file(directory: Path | None, variable: str) -> Path | None:
    if directory is None:
        return None
    for path in directory.iterdir():
        if path.name.lower() == variable.lower() and path.is_file():
            return path
    return None


_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]+@")


def jsonable(value: Any) -> Any:
    """A value as `raildebug config` prints it: secrets masked, paths as text."""
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return _URL_PASSWORD.sub(rf"\g<1>{MASK}@", value)  # redis://:pw@host -> redis://:****@
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (dict, list, tuple)):
        return json.loads(json.dumps(value, default=str))
    return value


def display(value: Any) -> str:
    """A value for text output: `(unset)` for None, JSON for containers."""
    value = jsonable(value)
    if value is None:
        return UNSET
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def markdown_table(models: tuple[type[RailDebugSettings], ...] = DOCUMENTED_SETTINGS) -> str:
    """README's Configure table: one row per variable, from the models alone (no environment)."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for model in models:
        for leaf in leaves(model, nested=False):
            default = leaf.shown_default()
            shown = "unset" if default == UNSET else f"`{default}`" if default else "empty"
            meaning = leaf.description
            choices = literal_choices(leaf.kind)
            if choices:
                meaning = f"{meaning} One of: {', '.join(f'`{c}`' for c in choices)}."
            if leaf.secret:
                meaning = f"{meaning} Secret: environment or secret file only, never a flag."
            lines.append(f"| `{leaf.variable}` | {_cell(shown)} | {_cell(meaning)} |")
    return "\n".join(lines) + "\n"


def literal_choices(kind: Any) -> tuple[Any, ...]:
    return get_args(kind) if get_origin(kind) is Literal else ()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def sync_readme(path: Path = README, *, check: bool) -> str | None:
    """Rewrite the table between the markers in `path`; with `check`, only compare.

    Returns None when the file is (now) current, else what is wrong.
    """
    text = path.read_text(encoding="utf-8")
    begin, end = text.find(BEGIN), text.find(END)
    if begin < 0 or end < begin:
        return f"{path}: no {BEGIN} ... {END} markers around the settings table"
    current = text[begin + len(BEGIN) : end]
    wanted = "\n" + markdown_table()
    if current == wanted:
        return None
    if check:
        return (
            f"{path}: the settings table is stale (raildebug/settings.py changed); "
            "run `python -m raildebug.settings_report` to regenerate it"
        )
    path.write_text(text[: begin + len(BEGIN)] + wanted + text[end:], encoding="utf-8")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("readme", nargs="?", type=Path, default=README)
    parser.add_argument("--check", action="store_true", help="fail if the table is stale")
    args = parser.parse_args(argv)
    problem = sync_readme(args.readme, check=args.check)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
