"""Where the served prompt comes from: the local registry, or Langfuse with the local registry as
fallback. The service never fails because Langfuse is slow or down."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Protocol

from raildebug.observability.logging import get_logger
from services.orchestrator.prompt_registry import PromptRegistry
from services.orchestrator.prompting import PromptTemplate, parse_template

log = get_logger(__name__)


class PromptSource(Protocol):
    def resolve(self, name: str, label: str) -> PromptTemplate:
        """The template `label` points to; NotFound when there is none."""
        ...


class LocalPromptSource:
    def __init__(self, registry: PromptRegistry) -> None:
        self._registry = registry

    def resolve(self, name: str, label: str) -> PromptTemplate:
        return self._registry.resolve(name, label)


class LangfusePromptSource:
    """Langfuse prompt management first (text prompt = our Jinja template, config = stop and
    max_context_chars), local registry when a fetch fails. After a failure Langfuse is not
    asked again for `retry_after_s`, so an outage costs one timeout, not one per request.
    Fetched prompts are cached by the Langfuse client for `cache_ttl_s` and refreshed in the
    background."""

    def __init__(
        self,
        client: Any,
        fallback: PromptSource,
        timeout_s: int,
        cache_ttl_s: int,
        retry_after_s: float = 30.0,
    ) -> None:
        self._client = client
        self._fallback = fallback
        self._timeout_s = timeout_s
        self._cache_ttl_s = cache_ttl_s
        self._retry_after_s = retry_after_s
        self._skip_until = 0.0
        self._lock = threading.Lock()

    @classmethod
    def connect(
        cls,
        host: str,
        public_key: str,
        secret_key: str,
        fallback: PromptSource,
        timeout_s: int,
        cache_ttl_s: int,
    ) -> LangfusePromptSource:
        from langfuse import Langfuse

        client = Langfuse(
            public_key=public_key,
            secret_key=secret_key,
            base_url=host,
            timeout=timeout_s,
            tracing_enabled=False,  # our traces go through OpenTelemetry, not the Langfuse SDK
        )
        return cls(client, fallback, timeout_s, cache_ttl_s)

    def resolve(self, name: str, label: str) -> PromptTemplate:
        with self._lock:
            skipping = time.monotonic() < self._skip_until
        if not skipping:
            try:
                return self._fetch(name, label)
            except Exception as error:  # any client, network or format failure: use the local one
                with self._lock:
                    self._skip_until = time.monotonic() + self._retry_after_s
                log.warning(
                    "langfuse prompt unavailable; serving the local registry",
                    prompt=name,
                    label=label,
                    error=f"{type(error).__name__}: {error}"[:300],
                )
        return self._fallback.resolve(name, label)

    def _fetch(self, name: str, label: str) -> PromptTemplate:
        prompt = self._client.get_prompt(
            name,
            label=label,
            type="text",
            cache_ttl_seconds=self._cache_ttl_s,
            max_retries=0,
            fetch_timeout_seconds=self._timeout_s,
        )
        config = dict(prompt.config or {})
        template = parse_template(
            _as_toml(name, int(prompt.version), prompt.prompt, config),
            f"langfuse prompt {name}@{prompt.version} ({label})",
        )
        return template


def _as_toml(name: str, version: int, source: str, config: dict[str, Any]) -> str:
    """Langfuse's text + config in our template format, so both go through one parser."""
    stop = json.dumps([str(s) for s in config.get("stop", [])])
    max_chars = int(config.get("max_context_chars", 6000))
    return (
        f"id = {json.dumps(name)}\nversion = {version}\nstop = {stop}\n"
        f"max_context_chars = {max_chars}\ntemplate = {json.dumps(source)}\n"
    )
