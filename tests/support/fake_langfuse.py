"""An in-process stand-in for the Langfuse server: the parts of its public API RailDebug uses.

Langfuse's server (Next.js, Postgres, ClickHouse, Redis) cannot run here, so the tests talk to
this one instead, through the official `langfuse` SDK and the OpenTelemetry OTLP/HTTP exporter,
exactly as they would talk to Langfuse. Written from Langfuse's published API reference (the
fern definitions behind https://api.reference.langfuse.com: prompts.yml, prompt-version.yml,
opentelemetry.yml) and checked against what SDK 5.2 sends:

    GET   /api/public/v2/prompts/{name}?label=|version=   one version; production by default
    GET   /api/public/v2/prompts?name=&label=&tag=&version=&page=&limit=   names with versions
    POST  /api/public/v2/prompts                            next version of a prompt (201)
    PATCH /api/public/v2/prompts/{name}/versions/{version}  {"newLabels": [...]}: add labels
    POST  /api/public/otel/v1/traces                        OTLP/HTTP, protobuf or JSON, gzip

Behaviour kept from the reference: HTTP basic auth with public key : secret key (401 with
`{"message", "error": "UnauthorizedError"}` otherwise; a bearer public key alone gets 403 on
prompts), labels unique per prompt (setting one on a version removes it from the others),
`latest` always on the newest version, tags shared by all versions, `version` and `label`
mutually exclusive (400), 404 `LangfuseNotFoundError` bodies, 400 "Invalid request data" for a
body that does not validate, and OTLP responses in the content type of the request.

`stop()` closes the port (clients get connection refused, as with Langfuse down) and `start()`
opens the same port again. Every instance has its own keys: the SDK shares one client per
public key in a process, so two fakes must never share one.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from google.protobuf.json_format import MessageToDict, Parse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.support.net import free_port

LATEST = "latest"
PRODUCTION = "production"
_LABEL = re.compile(r"^[a-z0-9_\-.]+$")
_LABEL_MAX = 36
_COMMIT_MESSAGE_MAX = 500
_PROMPTS = "/api/public/v2/prompts"
_OTLP_TRACES = "/api/public/otel/v1/traces"


@dataclass
class StoredPrompt:
    """One version of a prompt, as Langfuse stores and returns it."""

    name: str
    version: int
    type: str
    prompt: Any  # text: str; chat: list of messages
    config: Any
    labels: list[str]
    tags: list[str]
    commit_message: str | None
    created_by: str = "API"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: str = field(default_factory=lambda: _now())
    updated_at: str = field(default_factory=lambda: _now())

    def as_json(self, project_id: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "projectId": project_id,
            "createdBy": self.created_by,
            "prompt": self.prompt,
            "name": self.name,
            "version": self.version,
            "type": self.type,
            "isActive": None,
            "config": self.config,
            "tags": list(self.tags),
            "labels": list(self.labels),
            "commitMessage": self.commit_message,
            "resolutionGraph": None,
        }


@dataclass(frozen=True)
class ReceivedSpan:
    """A span as it arrived on the OTLP endpoint, attributes decoded to Python values."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    scope: str
    attributes: dict[str, Any]
    resource: dict[str, Any]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message"))
        self.status = status
        self.body = body


class FakeLangfuse:
    """One Langfuse project with one API key pair, served on 127.0.0.1."""

    def __init__(self) -> None:
        self.public_key = f"pk-lf-{uuid.uuid4()}"
        self.secret_key = f"sk-lf-{uuid.uuid4()}"
        self.project_id = f"project-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.prompts: dict[str, list[StoredPrompt]] = {}
        self.spans: list[ReceivedSpan] = []
        self.requests: list[RecordedRequest] = []
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def otlp_traces_url(self) -> str:
        return self.url + _OTLP_TRACES

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._server is not None:
            return
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close the port: from now on a client gets connection refused."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- what a Langfuse user does in the UI, and what tests look at -----------------------

    def create_prompt(
        self,
        name: str,
        prompt: Any,
        *,
        config: Any = None,
        labels: list[str] | None = None,
        tags: list[str] | None = None,
        commit_message: str | None = None,
        type: str = "text",
        created_by: str = "ui-user",
    ) -> StoredPrompt:
        """A new version, as if created in the Langfuse UI (same rules as the API)."""
        body: dict[str, Any] = {"name": name, "prompt": prompt, "type": type}
        body.update(config=config, labels=labels or [], tags=tags, commitMessage=commit_message)
        return self._create(body, created_by)

    def set_labels(self, name: str, version: int, labels: list[str]) -> StoredPrompt:
        """Add `labels` to a version (moving them off the others), as the UI does."""
        return self._update_labels(name, version, labels)

    def labels(self, name: str) -> dict[str, int]:
        with self.lock:
            return {label: p.version for p in self.prompts.get(name, []) for label in p.labels}

    def version(self, name: str, version: int) -> StoredPrompt:
        with self.lock:
            return next(p for p in self.prompts[name] if p.version == version)

    def requests_to(self, method: str, path_prefix: str) -> list[RecordedRequest]:
        with self.lock:
            return [
                r for r in self.requests if r.method == method and r.path.startswith(path_prefix)
            ]

    def spans_named(self, name: str) -> list[ReceivedSpan]:
        with self.lock:
            return [s for s in self.spans if s.name == name]

    # -- the API ---------------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, str, bytes]:
        """(status, content type, body) of one request."""
        parsed = urlparse(raw_path)
        query = parse_qs(parsed.query)
        with self.lock:
            self.requests.append(RecordedRequest(method, parsed.path, query, headers))
        try:
            if parsed.path == _OTLP_TRACES:
                if method != "POST":
                    raise _method_not_allowed()
                self._authorize(headers, method, prompts=False)
                return self._export_traces(headers, body)
            if parsed.path == _PROMPTS or parsed.path.startswith(_PROMPTS + "/"):
                status, payload = self._prompts_api(method, parsed.path, query, headers, body)
                return status, "application/json", json.dumps(payload).encode()
            raise ApiError(404, {"message": f"Not found: {parsed.path}"})
        except ApiError as error:
            return error.status, "application/json", json.dumps(error.body).encode()

    def _prompts_api(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, Any]:
        rest = path[len(_PROMPTS) :].strip("/")
        segments = [unquote(s) for s in rest.split("/")] if rest else []
        if not segments:
            if method == "GET":
                self._authorize(headers, method)
                return 200, self._list(query)
            if method == "POST":
                self._authorize(headers, method)
                return 201, self._create(_json_body(body), "API").as_json(self.project_id)
            raise _method_not_allowed()
        if len(segments) >= 3 and segments[-2] == "versions" and method == "PATCH":
            self._authorize(headers, method)
            name, version = "/".join(segments[:-2]), segments[-1]
            payload = _json_body(body)
            new_labels = payload.get("newLabels")
            if not isinstance(new_labels, list) or not all(isinstance(s, str) for s in new_labels):
                raise _invalid([_issue("invalid_type", "Expected array of strings", "newLabels")])
            if not version.isdigit():
                raise ApiError(404, {"message": f"Prompt not found: {name}"})
            return 200, self._update_labels(name, int(version), new_labels).as_json(self.project_id)
        if method != "GET":
            raise _method_not_allowed()
        self._authorize(headers, method)
        return 200, self._get("/".join(segments), query).as_json(self.project_id)

    def _authorize(self, headers: dict[str, str], method: str, prompts: bool = True) -> None:
        header = headers.get("authorization")
        if not header:
            raise _unauthorized("No authorization header")
        scheme, _, value = header.partition(" ")
        if scheme == "Bearer":
            if value != self.public_key:
                raise _unauthorized(
                    "Invalid public key. Confirm that you've configured the correct host."
                )
            what = "prompts" if prompts else "traces"
            raise ApiError(
                403,
                {
                    "message": f"Access denied - need to use basic auth with secret key to "
                    f"{method} {what}",
                    "error": "ForbiddenError",
                },
            )
        if scheme != "Basic":
            raise _unauthorized("Invalid authorization header")
        try:
            username, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise _unauthorized("Invalid authorization header") from None
        if not username or not password:
            raise _unauthorized("Invalid authorization header")
        if username != self.public_key:
            raise _unauthorized(
                "Invalid public key. Confirm that you've configured the correct host."
            )
        if password != self.secret_key:
            raise _unauthorized(
                "Invalid credentials. Confirm that you've configured the correct host."
            )

    def _get(self, name: str, query: dict[str, list[str]]) -> StoredPrompt:
        version = _int_param(query, "version")
        label = _param(query, "label")
        if version is not None and label is not None:
            raise ApiError(
                400,
                {
                    "message": "Cannot specify both version and label",
                    "error": "InvalidRequestError",
                },
            )
        with self.lock:
            versions = self.prompts.get(name, [])
            if version is not None:
                found = next((p for p in versions if p.version == version), None)
                where = f"with version {version}"
            else:
                wanted = label or PRODUCTION
                found = next((p for p in versions if wanted in p.labels), None)
                where = f"with label '{wanted}'"
        if found is None:
            raise ApiError(
                404,
                {
                    "message": f"Prompt not found: '{name}' {where}",
                    "error": "LangfuseNotFoundError",
                },
            )
        return found

    def _list(self, query: dict[str, list[str]]) -> dict[str, Any]:
        page = _int_param(query, "page") or 1
        limit = _int_param(query, "limit") or 10
        if page < 1 or not 1 <= limit <= 100:
            raise _invalid([_issue("too_small", "page >= 1 and 1 <= limit <= 100", "limit")])
        name, label, tag = _param(query, "name"), _param(query, "label"), _param(query, "tag")
        version = _int_param(query, "version")
        with self.lock:
            groups: dict[str, list[StoredPrompt]] = {}
            for prompt_name in sorted(self.prompts):
                matching = [
                    p
                    for p in self.prompts[prompt_name]
                    if (name is None or p.name == name)
                    and (version is None or p.version == version)
                    and (label is None or label in p.labels)
                    and (tag is None or tag in p.tags)
                ]
                if matching:
                    groups[prompt_name] = matching
            data = [
                {
                    "name": prompt_name,
                    "type": versions[-1].type,
                    "versions": [p.version for p in versions],
                    "labels": sorted({lb for p in versions for lb in p.labels}),
                    "tags": list(versions[-1].tags),
                    "lastUpdatedAt": max(p.updated_at for p in versions),
                    "lastConfig": versions[-1].config,
                }
                for prompt_name, versions in groups.items()
            ]
        total = len(data)
        return {
            "data": data[(page - 1) * limit : page * limit],
            "meta": {
                "page": page,
                "limit": limit,
                "totalItems": total,
                "totalPages": math.ceil(total / limit),
            },
        }

    def _create(self, body: dict[str, Any], created_by: str) -> StoredPrompt:
        issues = []
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or "|" in name or name == "new":
            issues.append(_issue("invalid_string", "Invalid prompt name", "name"))
        kind = body.get("type") or "text"
        prompt = body.get("prompt")
        if kind not in ("text", "chat"):
            issues.append(_issue("invalid_union", "type must be 'text' or 'chat'", "type"))
        elif kind == "text" and not isinstance(prompt, str):
            issues.append(_issue("invalid_type", "Expected string", "prompt"))
        elif kind == "chat" and not isinstance(prompt, list):
            issues.append(_issue("invalid_type", "Expected array", "prompt"))
        labels = body.get("labels") or []
        if not isinstance(labels, list):
            issues.append(_issue("invalid_type", "Expected array", "labels"))
            labels = []
        for index, label in enumerate(labels):
            if not isinstance(label, str) or not _valid_label(label):
                issues.append(
                    _issue(
                        "invalid_string",
                        "Label must be lowercase alphanumeric with optional underscores, "
                        "hyphens, or periods",
                        "labels",
                        index,
                    )
                )
        tags = body.get("tags")
        if tags is not None and (
            not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)
        ):
            issues.append(_issue("invalid_type", "Expected array of strings", "tags"))
        message = body.get("commitMessage")
        if message is not None and (
            not isinstance(message, str) or len(message) > _COMMIT_MESSAGE_MAX
        ):
            issues.append(_issue("too_big", "commitMessage is at most 500 characters", "commit"))
        if issues:
            raise _invalid(issues)
        assert isinstance(name, str)
        config = body.get("config")
        with self.lock:
            versions = self.prompts.setdefault(name, [])
            latest = versions[-1] if versions else None
            if latest is not None and latest.type != kind:
                raise ApiError(
                    400,
                    {
                        "message": "Previous versions have different prompt type. Create a "
                        "new prompt with a different name.",
                        "error": "InvalidRequestError",
                    },
                )
            new_labels = list(dict.fromkeys([*labels, LATEST]))
            self._take_labels(versions, new_labels)
            shared_tags = list(
                dict.fromkeys(tags if tags is not None else (latest.tags if latest else []))
            )
            for earlier in versions:
                earlier.tags = list(shared_tags)
            created = StoredPrompt(
                name=name,
                version=latest.version + 1 if latest else 1,
                type=kind,
                prompt=prompt,
                config=config if config is not None else {},
                labels=new_labels,
                tags=shared_tags,
                commit_message=message,
                created_by=created_by,
            )
            versions.append(created)
        return created

    def _update_labels(self, name: str, version: int, new_labels: list[str]) -> StoredPrompt:
        with self.lock:
            versions = self.prompts.get(name, [])
            target = next((p for p in versions if p.version == version), None)
            if target is None:
                raise ApiError(404, {"message": f"Prompt not found: {name}"})
            self._take_labels([p for p in versions if p is not target], new_labels)
            target.labels = list(dict.fromkeys([*target.labels, *new_labels]))
            target.updated_at = _now()
        return target

    @staticmethod
    def _take_labels(versions: list[StoredPrompt], labels: list[str]) -> None:
        """Labels are unique per prompt: remove them from these versions."""
        for other in versions:
            kept = [label for label in other.labels if label not in labels]
            if kept != other.labels:
                other.labels = kept
                other.updated_at = _now()

    def _export_traces(self, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        if "gzip" in headers.get("content-encoding", ""):
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError):
                return _otlp_error("Failed to decompress request body")
        content_type = headers.get("content-type", "").lower()
        request = ExportTraceServiceRequest()
        if "application/x-protobuf" in content_type:
            try:
                request.ParseFromString(body)
            except Exception:  # protobuf's DecodeError and friends
                return _otlp_error("Failed to parse OTel Protobuf Trace")
            answer = ExportTraceServiceResponse().SerializeToString()
            response = (200, "application/x-protobuf", answer)
        elif "application/json" in content_type:
            try:
                Parse(body.decode(), request)
            except Exception:
                return _otlp_error("Failed to parse OTel JSON Trace")
            response = (200, "application/json", b"{}")
        else:
            return _otlp_error("Invalid content type")
        received = [
            ReceivedSpan(
                name=span.name,
                trace_id=span.trace_id.hex(),
                span_id=span.span_id.hex(),
                parent_span_id=span.parent_span_id.hex(),
                scope=scope_spans.scope.name,
                attributes=_attributes(span.attributes),
                resource=_attributes(resource_spans.resource.attributes),
            )
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self.lock:
            self.spans.extend(received)
        return response


@contextmanager
def fake_langfuse() -> Iterator[FakeLangfuse]:
    fake = FakeLangfuse()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def _handler_for(fake: FakeLangfuse) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "fake-langfuse"

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, content_type, payload = fake.handle(self.command, self.path, headers, body)
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

    return Handler


def _attributes(pairs: Any) -> dict[str, Any]:
    """OTLP KeyValue list -> {key: python value}."""
    decoded: dict[str, Any] = {}
    for pair in pairs:
        value = MessageToDict(pair.value)
        if "stringValue" in value:
            decoded[pair.key] = value["stringValue"]
        elif "intValue" in value:
            decoded[pair.key] = int(value["intValue"])
        elif "doubleValue" in value:
            decoded[pair.key] = float(value["doubleValue"])
        elif "boolValue" in value:
            decoded[pair.key] = bool(value["boolValue"])
        else:
            decoded[pair.key] = value
    return decoded


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        raise _invalid([_issue("invalid_type", "Expected a JSON object", "")]) from None
    if not isinstance(payload, dict):
        raise _invalid([_issue("invalid_type", "Expected object", "")])
    return payload


def _param(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _int_param(query: dict[str, list[str]], name: str) -> int | None:
    value = _param(query, name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise _invalid([_issue("invalid_type", "Expected number, received nan", name)]) from None


def _valid_label(label: str) -> bool:
    return 0 < len(label) <= _LABEL_MAX and bool(_LABEL.match(label))


def _issue(code: str, message: str, *path: str | int) -> dict[str, Any]:
    return {"code": code, "message": message, "path": [p for p in path if p != ""]}


def _invalid(issues: list[dict[str, Any]]) -> ApiError:
    return ApiError(400, {"message": "Invalid request data", "error": issues})


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, {"message": message, "error": "UnauthorizedError"})


def _method_not_allowed() -> ApiError:
    return ApiError(405, {"message": "Method not allowed", "error": "MethodNotAllowedError"})


def _otlp_error(message: str) -> tuple[int, str, bytes]:
    return 400, "application/json", json.dumps({"error": message}).encode()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
