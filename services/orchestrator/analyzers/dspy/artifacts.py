"""Compiled programs as versioned JSON files: `<programs_dir>/<name>@<version>.json`.

Each file holds a manifest (what the program was compiled against and how it scored) and the
program state from `Module.dump_state()` (instructions and demos; no pickle, no LM settings).
Versions only grow; a released file is never overwritten. Programs shipped in the package
(`programs/` beside this module, so every image has them) are found after the writable one.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dspy

from raildebug.errors import InvalidRequest, NotFound

SHIPPED_PROGRAMS_DIR = Path(__file__).resolve().parent / "programs"
FORMAT = "raildebug.dspy_program/1"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_FILE = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)@(?P<version>\d+)\.json$")


@dataclass(frozen=True)
class Manifest:
    name: str
    version: int
    program: str  # module class, e.g. "RailFixRAG"
    model: str  # served model the prompts were compiled against
    data_version: str
    metric_version: str
    optimizer: dict[str, Any]
    scores: dict[str, float]  # dev metric, uncompiled and compiled
    cost: dict[str, float]  # LM calls, tokens, minutes
    dspy_version: str = field(default_factory=lambda: str(dspy.__version__))
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class StoredProgram:
    manifest: Manifest
    state: dict[str, Any]
    path: Path


class ProgramStore:
    def __init__(self, programs_dir: Path, shipped_dir: Path | None = SHIPPED_PROGRAMS_DIR) -> None:
        self.programs_dir = programs_dir
        self._search = [programs_dir] + ([shipped_dir] if shipped_dir else [])

    def save(self, manifest_fields: dict[str, Any], program: dspy.Module) -> StoredProgram:
        """Write the next version of `name`; returns what was written."""
        name = str(manifest_fields["name"])
        if not _NAME.match(name):
            raise InvalidRequest(
                f"program name {name!r} must be lower-case letters, digits and _ (e.g. rail_fix)"
            )
        version = max((m.version for m in self.list() if m.name == name), default=0) + 1
        manifest = Manifest(**{**manifest_fields, "version": version})
        path = self.programs_dir / f"{manifest.ref}.json"
        self.programs_dir.mkdir(parents=True, exist_ok=True)
        document = {"format": FORMAT, "manifest": asdict(manifest), "state": program.dump_state()}
        with path.open("x", encoding="utf-8") as out:  # "x": never overwrite a version
            json.dump(document, out, indent=2, ensure_ascii=False)
            out.write("\n")
        return StoredProgram(manifest, document["state"], path)

    def list(self) -> list[Manifest]:
        seen: dict[str, Manifest] = {}
        for directory in self._search:
            for path in sorted(directory.glob("*@*.json")) if directory.is_dir() else ():
                if _FILE.match(path.name):
                    manifest = _read(path).manifest
                    seen.setdefault(manifest.ref, manifest)
        return sorted(seen.values(), key=lambda m: (m.name, m.version))

    def get(self, ref: str) -> StoredProgram:
        """`name@version`, or `name` for its latest version."""
        name, _, version = ref.partition("@")
        candidates = [m for m in self.list() if m.name == name]
        if version:
            candidates = [m for m in candidates if str(m.version) == version]
        if not candidates:
            available = [m.ref for m in self.list()]
            raise NotFound(
                f"compiled DSPy program {ref!r} not found in {[str(d) for d in self._search]}; "
                f"available: {available or 'none'} (create one with `raildebug dspy compile`)"
            )
        chosen = max(candidates, key=lambda m: m.version)
        for directory in self._search:
            path = directory / f"{chosen.ref}.json"
            if path.is_file():
                return _read(path)
        raise NotFound(f"compiled DSPy program {chosen.ref} disappeared while loading it")


def _read(path: Path) -> StoredProgram:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("format") != FORMAT:
            raise ValueError(f"format is {document.get('format')!r}, expected {FORMAT!r}")
        return StoredProgram(Manifest(**document["manifest"]), document["state"], path)
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidRequest(f"{path} is not a compiled RailDebug DSPy program: {error}") from None
