"""Langfuse as a home for prompt versions: its client, our template as a Langfuse text prompt
and back, and two-way sync between Langfuse and the local registry (push, pull).

A version of a RailDebug prompt in Langfuse is a *text* prompt whose text is our Jinja template
and whose config holds `stop`, `max_context_chars` and, if any, `description`. Both sides number
versions 1, 2, ... and never edit one, keep labels unique per prompt, and carry a message per
version (Langfuse's commit message), so a sync keeps numbers, labels and messages as they are.
Langfuse moves its `latest` label itself: it is never synced. A Langfuse version is only ever
served or stored here after it passed the same validation as a local one (it parses and
renders), see `template_from_langfuse`.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from raildebug.errors import (
    InvalidRequest,
    NotFound,
    NotReady,
    RailDebugError,
    Unauthenticated,
)
from raildebug.settings import OrchestratorSettings
from services.orchestrator.prompt_registry import PromptRegistry
from services.orchestrator.prompting import (
    DEFAULT_MAX_CONTEXT_CHARS,
    PromptTemplate,
    check_renders,
    parse_template,
)

MANAGED_LABELS = frozenset({"latest"})  # Langfuse points it at the newest version itself


def connect(host: str, public_key: str, secret_key: str, timeout_s: int) -> Any:
    """The official Langfuse client (prompt management only: our traces go through
    OpenTelemetry, see langfuse_traces.py). The SDK keeps one client per public key in a
    process, so one process talks to one Langfuse host per key."""
    from langfuse import Langfuse

    if not host or not public_key or not secret_key:
        raise InvalidRequest(
            "Langfuse needs RAILDEBUG_ORCHESTRATOR_LANGFUSE_HOST, _LANGFUSE_PUBLIC_KEY and "
            "_LANGFUSE_SECRET_KEY"
        )
    return Langfuse(
        public_key=public_key,
        secret_key=secret_key,
        base_url=host,
        timeout=timeout_s,
        tracing_enabled=False,
    )


def connect_from(settings: OrchestratorSettings) -> Any:
    secret = settings.langfuse_secret_key
    return connect(
        settings.langfuse_host,
        settings.langfuse_public_key,
        secret.get_secret_value() if secret else "",
        settings.langfuse_timeout_s,
    )


def as_langfuse(body: str, origin: str) -> tuple[str, dict[str, Any]]:
    """A local version's TOML body as Langfuse's (prompt text, config)."""
    template = parse_template(body, origin)
    config: dict[str, Any] = {
        "stop": list(template.stop),
        "max_context_chars": template.max_context_chars,
    }
    if template.format == "chat":  # the user turn is the prompt text; the rest rides in config
        config["format"] = template.format
        config["system"] = template.system
    if template.max_context_tokens:
        config["max_context_tokens"] = template.max_context_tokens
    if template.grammar:
        config["grammar"] = template.grammar
    description = tomllib.loads(body).get("description")
    if isinstance(description, str) and description:
        config["description"] = description
    return template.source, config


def body_from_langfuse(name: str, version: int, text: Any, config: Any, origin: str) -> str:
    """Langfuse's prompt text and config as a local version's TOML body (not yet validated)."""
    if not isinstance(text, str):
        raise InvalidRequest(f"{origin} is a chat prompt; RailDebug serves text prompts only")
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise InvalidRequest(f"{origin}: config must be a JSON object, got {config!r}")
    stop = config.get("stop", [])
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise InvalidRequest(f"{origin}: config.stop must be a list of strings, got {stop!r}")
    max_chars = config.get("max_context_chars", DEFAULT_MAX_CONTEXT_CHARS)
    if not isinstance(max_chars, int) or isinstance(max_chars, bool):
        raise InvalidRequest(f"{origin}: config.max_context_chars must be an integer")
    lines = [f"id = {_basic(name)}", f"version = {int(version)}"]
    description = config.get("description")
    if isinstance(description, str) and description:
        lines.append(f"description = {_basic(description)}")
    stops = ", ".join(_basic(s) for s in stop)
    lines += [f"stop = [{stops}]", f"max_context_chars = {max_chars}"]
    max_tokens = config.get("max_context_tokens", 0)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise InvalidRequest(f"{origin}: config.max_context_tokens must be an integer")
    if max_tokens:
        lines.append(f"max_context_tokens = {max_tokens}")
    grammar = config.get("grammar", "")
    if not isinstance(grammar, str):
        raise InvalidRequest(f"{origin}: config.grammar must be text (GBNF)")
    if grammar:
        lines.append(f"grammar = {_toml_string(grammar)}")
    if config.get("format", "completion") != "completion":
        system = config.get("system")
        if not isinstance(system, str):
            raise InvalidRequest(f"{origin}: a chat-format prompt needs config.system (text)")
        lines += [f"format = {_basic(str(config['format']))}", f"system = {_toml_string(system)}"]
    return "\n".join([*lines, f"template = {_toml_string(text)}"]) + "\n"


def template_from_langfuse(
    name: str, version: int, text: Any, config: Any, origin: str
) -> PromptTemplate:
    """The template a Langfuse version stands for, validated like a local version: it must be
    a text prompt with a well-formed config, parse, and render. InvalidRequest otherwise."""
    body = body_from_langfuse(name, version, text, config, origin)
    return check_renders(parse_template(body, origin), origin)


@dataclass(frozen=True)
class RemoteVersion:
    """One version of a prompt as Langfuse holds it."""

    name: str
    version: int
    text: Any
    config: Any
    labels: tuple[str, ...]
    commit_message: str
    created_by: str

    @property
    def origin(self) -> str:
        return f"Langfuse prompt {self.name}@{self.version}"

    def template(self) -> PromptTemplate:
        return template_from_langfuse(self.name, self.version, self.text, self.config, self.origin)


@dataclass
class SyncReport:
    """What a push or pull changed, and what it left alone (one line each)."""

    created: list[int] = field(default_factory=list)
    moved: list[tuple[str, int, int | None]] = field(default_factory=list)  # label, to, from
    notes: list[str] = field(default_factory=list)

    def lines(self, name: str, where: str) -> list[str]:
        out = [f"{where}: created {name}@{v}" for v in self.created]
        for label, version, before in self.moved:
            was = "unset" if before is None else str(before)
            out.append(f"{where}: {name} {label}: {was} → {version}")
        if not out:
            out.append(f"{where}: {name} already in sync")
        return out + self.notes


def remote_versions(client: Any, name: str, host: str) -> dict[int, RemoteVersion]:
    """Every version of `name` in Langfuse, by number (empty when it has none)."""
    with langfuse_errors(host):
        listing = client.api.prompts.list(name=name, limit=100)
        numbers = next((list(p.versions) for p in listing.data if p.name == name), [])
        versions: dict[int, RemoteVersion] = {}
        for number in sorted(numbers):
            prompt = client.api.prompts.get(quote(name, safe=""), version=number)
            extra = prompt.model_extra or {}
            versions[number] = RemoteVersion(
                name=name,
                version=int(prompt.version),
                text=prompt.prompt,
                config=prompt.config,
                labels=tuple(prompt.labels),
                commit_message=prompt.commit_message or "",
                created_by=str(extra.get("createdBy") or "unknown"),
            )
    return versions


def push(registry: PromptRegistry, client: Any, name: str, actor: str, host: str) -> SyncReport:
    """Make Langfuse hold every local version of `name` under the same number and message, and
    point every local label at the same version there. Labels only Langfuse has stay as they
    are. Each change Langfuse accepted is written to the local audit log as a "push"."""
    local = registry.versions(name)
    remote = remote_versions(client, name, host)
    _refuse_conflicts(registry, name, remote, set(remote) & {v.version for v in local})
    report = SyncReport()
    top = max(remote, default=0)
    with langfuse_errors(host):
        for version in local:
            if version.version in remote:
                continue
            if version.version != top + 1:
                raise InvalidRequest(
                    f"Langfuse's {name} has versions {sorted(remote)}: {name}@{version.version} "
                    "cannot keep its number there"
                )
            text, config = as_langfuse(registry.body(name, version.version), f"{name}@{top + 1}")
            created = client.create_prompt(
                name=name,
                prompt=text,
                config=config,
                labels=[],
                type="text",
                commit_message=version.message,
            )
            if int(created.version) != version.version:
                raise InvalidRequest(
                    f"Langfuse stored {name}@{version.version} as version {created.version}: "
                    "someone created a version meanwhile; pull, then push again"
                )
            top = version.version
            report.created.append(top)
            registry.record(
                actor, "push", name, "", top, None, f"to Langfuse {host}: {version.message}"
            )
        there = _labels(remote)
        for label, version_number in registry.labels(name).items():
            if label in MANAGED_LABELS:
                report.notes.append(f"label {label!r} is Langfuse's own: not pushed")
                continue
            before = there.get(label)
            if before == version_number:
                continue
            client.update_prompt(name=name, version=version_number, new_labels=[label])
            report.moved.append((label, version_number, before))
            registry.record(
                actor, "push", name, label, version_number, before, f"to Langfuse {host}"
            )
    for label in sorted(set(there) - set(registry.labels(name)) - MANAGED_LABELS):
        report.notes.append(f"label {label!r} exists only in Langfuse: left as it is")
    return report


def pull(registry: PromptRegistry, client: Any, name: str, actor: str, host: str) -> SyncReport:
    """Store every Langfuse version of `name` the registry lacks, under the same number, with
    its commit message and its Langfuse author, and move local labels to where Langfuse points
    them. Nothing is stored unless every new version passes validation. Each change is written
    to the local audit log as a "pull" by `actor`."""
    remote = remote_versions(client, name, host)
    if not remote:
        raise NotFound(f"Langfuse at {host} has no prompt named {name!r}")
    try:
        local = {v.version for v in registry.versions(name)}
    except NotFound:
        local = set()
    _refuse_conflicts(registry, name, remote, local & set(remote))
    new = [remote[n] for n in sorted(remote) if n not in local]
    expected = max(local, default=0) + 1
    for offset, version in enumerate(new):
        if version.version != expected + offset:
            raise InvalidRequest(
                f"{version.origin} cannot keep its number here: the next local version is "
                f"{expected + offset} (versions: local {sorted(local)}, Langfuse {sorted(remote)})"
            )
    refused: list[str] = []
    bodies: dict[int, str] = {}
    for version in new:
        try:
            version.template()
            bodies[version.version] = body_from_langfuse(
                name, version.version, version.text, version.config, version.origin
            )
        except InvalidRequest as error:
            refused.append(str(error))
    if refused:
        raise InvalidRequest("nothing pulled; refused: " + "; ".join(refused))
    report = SyncReport()
    for version in new:
        registry.create(
            name,
            bodies[version.version],
            author=f"langfuse:{version.created_by}",
            message=version.commit_message or "created in Langfuse without a commit message",
            expect_version=version.version,
            actor=actor,
            action="pull",
        )
        report.created.append(version.version)
    here = registry.labels(name)
    for label, version_number in sorted(_labels(remote).items()):
        if label in MANAGED_LABELS or here.get(label) == version_number:
            continue
        try:
            registry.set_label(
                name, label, version_number, actor, f"from Langfuse {host}", action="pull"
            )
        except InvalidRequest as error:
            report.notes.append(f"label {label!r} not pulled: {error}")
            continue
        report.moved.append((label, version_number, here.get(label)))
    for label in sorted(set(here) - set(_labels(remote))):
        report.notes.append(f"label {label!r} exists only locally: left as it is")
    return report


@contextmanager
def langfuse_errors(host: str) -> Iterator[None]:
    """SDK and network failures as domain errors that say what to check."""
    from langfuse.api import AccessDeniedError, UnauthorizedError

    try:
        yield
    except RailDebugError:
        raise
    except (UnauthorizedError, AccessDeniedError) as error:
        raise Unauthenticated(
            f"Langfuse at {host} refused the keys ({_body(error)}): check "
            "RAILDEBUG_ORCHESTRATOR_LANGFUSE_PUBLIC_KEY / _SECRET_KEY"
        ) from None
    except Exception as error:  # connection refused, timeouts, 5xx, unexpected payloads
        raise NotReady(
            f"Langfuse at {host} failed: {type(error).__name__}: {error}"[:500]
        ) from None


def _refuse_conflicts(
    registry: PromptRegistry, name: str, remote: dict[int, RemoteVersion], common: set[int]
) -> None:
    for number in sorted(common):
        ours = registry.template(name, number)
        try:
            theirs = remote[number].template()
        except InvalidRequest as error:
            raise InvalidRequest(f"{name}@{number} differs from Langfuse's: {error}") from None
        if ours != theirs:
            raise InvalidRequest(
                f"{name}@{number} is not the same here and in Langfuse (template, system "
                "turn, stop or context budget): the two histories have diverged; resolve by hand"
            )


def _labels(versions: dict[int, RemoteVersion]) -> dict[str, int]:
    return {label: v.version for v in versions.values() for label in v.labels}


def _toml_string(text: str) -> str:
    """A multi-line literal TOML string when `text` allows one (readable in `prompts show`),
    else a basic string with escapes."""
    allowed = all(c in "\n\t" or (ord(c) >= 0x20 and c != "\x7f") for c in text)
    if allowed and "'''" not in text and not text.endswith("'"):
        return "'''\n" + text + "'''"  # TOML drops the newline right after the opening quotes
    return _basic(text)


def _basic(text: str) -> str:
    """`text` as a TOML basic string (JSON's escapes are TOML's; DEL must be escaped too)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _body(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])
    return str(body or error)
