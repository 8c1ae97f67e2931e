"""A tiny in-memory Kubernetes API server for `raildebug train submit/status` tests.

The API server is the one part of Kubernetes that cannot run here. This fake speaks enough of its
REST protocol (create, read, replace, merge-patch, list by label; 404/409 Status bodies) for the
real `kubernetes` Python client to talk to it over HTTP, so the client's serialization and error
handling are exercised, not mocked.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

_PATH = re.compile(
    r"^/(?:api/v1|apis/batch/v1)/namespaces/(?P<ns>[^/]+)/(?P<plural>[a-z]+)"
    r"(?:/(?P<name>[^/]+))?(?:/status)?$"
)
_KINDS = {
    "jobs": "Job",
    "pods": "Pod",
    "services": "Service",
    "configmaps": "ConfigMap",
    "persistentvolumeclaims": "PersistentVolumeClaim",
}


@dataclass
class FakeApiServer:
    url: str = ""
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    forbidden_namespaces: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, plural: str, obj: dict[str, Any]) -> None:
        """Seed an object, e.g. a Job's status or its pods, as the controllers would."""
        meta = obj["metadata"]
        with self.lock:
            self.objects[(plural, meta["namespace"], meta["name"])] = obj

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            return self.objects.get((plural, namespace, name))

    def created(self) -> list[tuple[str, str]]:
        """(plural, name) of every POST, in order."""
        return [(method, path) for method, path in self.requests if method == "POST"]

    def write_kubeconfig(self, path: Path) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "test-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester"}}],
            "current-context": "fake",
        }
        path.write_text(json.dumps(config), encoding="utf-8")
        return path


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _handler(state: FakeApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length", "0"))
            return json.loads(self.rfile.read(length) or b"{}")

        def _route(self, method: str) -> None:
            url = urlparse(self.path)
            state.requests.append((method, url.path))
            match = _PATH.match(url.path)
            if match is None:
                self._reply(404, _status(404, "NotFound", f"no route {url.path}"))
                return
            namespace, plural, name = match["ns"], match["plural"], match["name"]
            if namespace in state.forbidden_namespaces:
                message = f'{plural} is forbidden: User "tester" cannot {method} in "{namespace}"'
                self._reply(403, _status(403, "Forbidden", message))
                return
            key = (plural, namespace, name or "")
            with state.lock:
                if method == "GET" and name is None:
                    selector = parse_qs(url.query).get("labelSelector", [""])[0]
                    wanted = dict(part.split("=", 1) for part in selector.split(",") if part)
                    items = [
                        obj
                        for (p, ns, _), obj in sorted(state.objects.items())
                        if p == plural
                        and ns == namespace
                        and wanted.items() <= obj["metadata"].get("labels", {}).items()
                    ]
                    kind = f"{_KINDS[plural]}List"
                    self._reply(200, {"kind": kind, "apiVersion": "v1", "items": items})
                    return
                if method == "POST":
                    obj = self._body()
                    key = (plural, namespace, obj["metadata"]["name"])
                    if key in state.objects:
                        message = f'{plural} "{key[2]}" already exists'
                        self._reply(409, _status(409, "AlreadyExists", message))
                        return
                    obj["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()))
                    state.objects[key] = obj
                    self._reply(201, obj)
                    return
                existing = state.objects.get(key)
                if existing is None:
                    message = f'{plural} "{name}" not found'
                    self._reply(404, _status(404, "NotFound", message))
                    return
                if method == "PUT":
                    state.objects[key] = self._body()
                elif method == "PATCH":
                    patch = self._body()
                    content_type = self.headers.get("Content-Type", "")
                    if content_type != "application/merge-patch+json" or not isinstance(
                        patch, dict
                    ):
                        message = f"this fake applies only JSON merge patches, not {content_type}"
                        self._reply(415, _status(415, "UnsupportedMediaType", message))
                        return
                    _merge(existing, patch)
                self._reply(200, state.objects[key])

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PUT(self) -> None:
            self._route("PUT")

        def do_PATCH(self) -> None:
            self._route("PATCH")

    return Handler


@contextmanager
def running_fake_apiserver() -> Iterator[FakeApiServer]:
    state = FakeApiServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
