"""Local prompt registry: immutable numbered versions, movable labels, and an audit log.

Versions are never edited; what is served is chosen by moving a label (production, staging,
dev, or any custom one) to a version. Every change records who made it, when and why, and a
rollback moves a label back to where it pointed before. One SQLite file, safe for several
processes. On first use it is seeded from the template files shipped in
services/orchestrator/prompts.
"""

from __future__ import annotations

import difflib
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import EllipsisType

from raildebug.errors import InvalidRequest, NotFound
from services.orchestrator.prompting import (
    PROMPTS_DIR,
    PromptTemplate,
    check_renders,
    parse_template,
)

STANDARD_LABELS = ("production", "staging", "dev")
_LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    author TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS labels (
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name, label)
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    version INTEGER NOT NULL,
    previous_version INTEGER,
    reason TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class PromptVersion:
    name: str
    version: int
    created_at: float
    author: str
    message: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class AuditEntry:
    at: float
    actor: str
    action: str  # "create", "label", "rollback", "seed"; "push", "pull" (Langfuse sync)
    name: str
    label: str
    version: int
    previous_version: int | None
    reason: str


# Where a registry imports the shipped versions from unless told otherwise (read when a registry
# opens, so a test can point every registry, the CLI's too, at a subset of them).
SHIPPED_PROMPTS: Path = PROMPTS_DIR


class PromptRegistry:
    def __init__(self, directory: Path, seed_from: Path | EllipsisType | None = ...) -> None:
        """`seed_from`: a directory of shipped template files (default SHIPPED_PROMPTS); None:
        import nothing."""
        if isinstance(seed_from, EllipsisType):
            seed_from = SHIPPED_PROMPTS
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "prompts.sqlite3"
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=10
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        if seed_from is not None:
            self._seed(seed_from)

    def names(self) -> list[str]:
        rows = self._db.execute("SELECT DISTINCT name FROM versions ORDER BY name").fetchall()
        return [row[0] for row in rows]

    def versions(self, name: str) -> list[PromptVersion]:
        labels: dict[int, list[str]] = {}
        for label, version in self._db.execute(
            "SELECT label, version FROM labels WHERE name = ? ORDER BY label", (name,)
        ):
            labels.setdefault(version, []).append(label)
        rows = self._db.execute(
            "SELECT version, created_at, author, message FROM versions WHERE name = ? "
            "ORDER BY version",
            (name,),
        ).fetchall()
        if not rows:
            raise NotFound(f"no prompt named {name!r}; known: {self.names()}")
        return [
            PromptVersion(name, version, at, author, message, tuple(labels.get(version, ())))
            for version, at, author, message in rows
        ]

    def labels(self, name: str) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT label, version FROM labels WHERE name = ? ORDER BY label", (name,)
        )
        return dict(rows.fetchall())

    def body(self, name: str, version: int) -> str:
        row = self._db.execute(
            "SELECT body FROM versions WHERE name = ? AND version = ?", (name, version)
        ).fetchone()
        if row is None:
            known = [v.version for v in self.versions(name)]
            raise NotFound(f"prompt {name!r} has no version {version}; versions: {known}")
        return str(row[0])

    def template(self, name: str, version: int) -> PromptTemplate:
        return parse_template(self.body(name, version), f"prompt {name}@{version}")

    def resolve(self, name: str, label: str) -> PromptTemplate:
        """The template `label` points to."""
        version = self.labels(name).get(label)
        if version is None:
            raise NotFound(
                f"prompt {name!r} has no label {label!r}; labels: {self.labels(name)}. "
                f"Set one with `raildebug prompts label {name} VERSION {label}`"
            )
        return self.template(name, version)

    def create(
        self,
        name: str,
        body: str,
        author: str,
        message: str,
        *,
        expect_version: int | None = None,
        actor: str | None = None,
        action: str = "create",
    ) -> int:
        """Store the template TOML `body` as the next version of `name`; returns its number.

        `expect_version` refuses the version unless it gets that number (a pull keeps Langfuse's
        numbers); `actor` and `action` are what the audit log records (default: the author
        created it)."""
        _check_name(name)
        if not message.strip():
            raise InvalidRequest("say what changed: a version needs a message")
        with self._transaction():
            (latest,) = self._db.execute(
                "SELECT COALESCE(MAX(version), 0) FROM versions WHERE name = ?", (name,)
            ).fetchone()
            version = int(latest) + 1
            if expect_version is not None and version != expect_version:
                raise InvalidRequest(
                    f"{name}@{expect_version} cannot be stored: the next local version is {version}"
                )
            body = _with_identity(body, name, version)
            origin = f"new version of {name}"
            check_renders(parse_template(body, origin), origin)
            self._insert_version(name, version, body, author, message)
            self._audit(actor or author, action, name, "", version, None, message)
        return version

    def set_label(
        self, name: str, label: str, version: int, actor: str, reason: str, action: str = "label"
    ) -> None:
        """Point `label` at `version`; `action` is what the audit log calls the move ("label",
        or "pull" when it follows a label moved in Langfuse)."""
        self._move_label(name, label, version, actor, reason, action)

    def record(
        self,
        actor: str,
        action: str,
        name: str,
        label: str,
        version: int,
        previous_version: int | None,
        reason: str,
    ) -> None:
        """Audit a change made elsewhere with this registry's versions (a push to Langfuse):
        who, what, which version, what the label pointed to there before, and why."""
        self._audit(actor, action, name, label, version, previous_version, reason)

    def rollback(self, name: str, label: str, actor: str, reason: str) -> int:
        """Point `label` back to the version it had before its last move; returns that version."""
        row = self._db.execute(
            "SELECT previous_version, version FROM audit WHERE name = ? AND label = ? "
            "AND action IN ('label', 'rollback', 'seed', 'pull') ORDER BY id DESC LIMIT 1",
            (name, label),
        ).fetchone()
        if row is None or row[0] is None:
            raise InvalidRequest(
                f"label {label!r} of {name!r} has no earlier version to roll back to; "
                f"use `raildebug prompts label {name} VERSION {label}`"
            )
        previous = int(row[0])
        self._move_label(name, label, previous, actor, reason, "rollback")
        return previous

    def history(self, name: str, label: str | None = None) -> list[AuditEntry]:
        query = "SELECT at, actor, action, name, label, version, previous_version, reason "
        query += "FROM audit WHERE name = ?"
        params: tuple[str, ...] = (name,)
        if label is not None:
            query += " AND label = ?"
            params = (name, label)
        return [AuditEntry(*row) for row in self._db.execute(query + " ORDER BY id", params)]

    def diff(self, name: str, old: int, new: int) -> str:
        return "".join(
            difflib.unified_diff(
                self.body(name, old).splitlines(keepends=True),
                self.body(name, new).splitlines(keepends=True),
                fromfile=f"{name}@{old}",
                tofile=f"{name}@{new}",
            )
        )

    def close(self) -> None:
        self._db.close()

    def _move_label(
        self, name: str, label: str, version: int, actor: str, reason: str, action: str
    ) -> None:
        if not _LABEL.match(label):
            raise InvalidRequest(
                f"label {label!r} must be lowercase letters, digits, '-' or '_' (max 32)"
            )
        if not reason.strip():
            raise InvalidRequest("say why: moving a label needs a reason for the audit log")
        self.body(name, version)  # NotFound for an unknown version
        with self._transaction():
            previous = self.labels(name).get(label)
            self._db.execute(
                "INSERT OR REPLACE INTO labels (name, label, version) VALUES (?,?,?)",
                (name, label, version),
            )
            self._audit(actor, action, name, label, version, previous, reason)

    def _seed(self, directory: Path) -> None:
        """Import every shipped version the registry lacks. A prompt new to the registry gets
        the standard labels on its newest shipped version; a prompt already here keeps its
        labels (moving them is an operator's decision, with an audit entry)."""
        shipped: dict[str, list[tuple[PromptTemplate, Path]]] = {}
        for path in sorted(directory.glob("*@*.toml")):
            template = parse_template(path.read_text(encoding="utf-8"), str(path))
            shipped.setdefault(template.id, []).append((template, path))
        with self._transaction():
            for name, versions in shipped.items():
                known = {
                    row[0]
                    for row in self._db.execute(
                        "SELECT version FROM versions WHERE name = ?", (name,)
                    )
                }
                for template, path in sorted(versions, key=lambda item: item[0].version):
                    if template.version in known:
                        continue
                    self._insert_version(
                        name,
                        template.version,
                        path.read_text(encoding="utf-8"),
                        "seed",
                        f"imported from {path.name}",
                    )
                if known:
                    continue
                newest, path = max(versions, key=lambda item: item[0].version)
                for label in STANDARD_LABELS:
                    self._db.execute(
                        "INSERT INTO labels (name, label, version) VALUES (?,?,?)",
                        (name, label, newest.version),
                    )
                    self._audit("seed", "seed", name, label, newest.version, None, path.name)

    def _insert_version(self, name: str, version: int, body: str, author: str, msg: str) -> None:
        self._db.execute(
            "INSERT INTO versions VALUES (?,?,?,?,?,?)",
            (name, version, body, time.time(), author, msg),
        )

    def _audit(
        self,
        actor: str,
        action: str,
        name: str,
        label: str,
        version: int,
        previous: int | None,
        reason: str,
    ) -> None:
        self._db.execute(
            "INSERT INTO audit (at, actor, action, name, label, version, previous_version, "
            "reason) VALUES (?,?,?,?,?,?,?,?)",
            (time.time(), actor, action, name, label, version, previous, reason),
        )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise InvalidRequest(f"prompt name {name!r} must be lowercase letters, digits or '_'")


def _with_identity(body: str, name: str, version: int) -> str:
    """Set the id/version keys of a template body (those before `template`) to the registry's."""
    lines = body.splitlines()
    head_end = next((i for i, line in enumerate(lines) if line.startswith("template")), len(lines))
    head = [line for line in lines[:head_end] if not re.match(r"^\s*(id|version)\s*=", line)]
    return "\n".join([f'id = "{name}"', f"version = {version}", *head, *lines[head_end:]]) + "\n"
