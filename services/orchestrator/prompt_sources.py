"""Where the served prompt comes from: the local registry, or Langfuse with the local registry as
fallback. The service never fails because Langfuse is slow or down.

What to serve is named by a label (production, staging, dev, a custom one) or by `@N`, a pinned
version N; both sources understand both, so an A/B arm may also be a pinned version.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from raildebug.errors import InvalidRequest
from raildebug.observability.logging import get_logger
from services.orchestrator.langfuse_prompts import connect, template_from_langfuse
from services.orchestrator.prompt_registry import PromptRegistry
from services.orchestrator.prompting import PromptTemplate

log = get_logger(__name__)


class PromptSource(Protocol):
    def resolve(self, name: str, label: str) -> PromptTemplate:
        """The template `label` (or `@N`, version N) points to; NotFound when there is none."""
        ...


def pinned_version(label: str) -> int | None:
    """N for a pinned `@N`, None for a label."""
    if label.startswith("@"):
        if not label[1:].isdigit() or int(label[1:]) < 1:
            raise InvalidRequest(f"{label!r}: a pinned version is written @N, N = 1, 2, ...")
        return int(label[1:])
    return None


class LocalPromptSource:
    def __init__(self, registry: PromptRegistry) -> None:
        self._registry = registry

    def resolve(self, name: str, label: str) -> PromptTemplate:
        version = pinned_version(label)
        if version is not None:
            return self._registry.template(name, version)
        return self._registry.resolve(name, label)


@dataclass(frozen=True)
class _Cached:
    template: PromptTemplate | None  # None: Langfuse has no such prompt, or it was refused
    expires: float


class LangfusePromptSource:
    """Langfuse prompt management first, through the official SDK (a text prompt is our Jinja
    template, its config holds stop and max_context_chars); the local registry when Langfuse
    cannot answer.

    - A fetched version is served for `cache_ttl_s`, then fetched again: a label moved in
      Langfuse is served from the first request after the TTL.
    - A version that fails validation (see `template_from_langfuse`) is refused, logged and
      never served; the local registry serves instead until the TTL has passed. So does a
      label or version Langfuse does not have (404).
    - When Langfuse is unreachable (or errs), the local registry serves, and Langfuse is not
      asked again for `retry_after_s`, so an outage costs one timeout, not one per request;
      after that, the next request due a fetch tries Langfuse again and is served from it
      once it answers.
    """

    def __init__(
        self,
        client: Any,
        fallback: PromptSource,
        timeout_s: int,
        cache_ttl_s: int,
        retry_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._fallback = fallback
        self._timeout_s = timeout_s
        self._cache_ttl_s = cache_ttl_s
        self._retry_after_s = retry_after_s
        self._clock = clock
        self._skip_until = float("-inf")
        self._cache: dict[tuple[str, str], _Cached] = {}
        self._lock = threading.Lock()
        self._fetching = threading.Lock()  # one fetch at a time; the others wait for its result

    @classmethod
    def connect(
        cls,
        host: str,
        public_key: str,
        secret_key: str,
        fallback: PromptSource,
        timeout_s: int,
        cache_ttl_s: int,
        retry_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> LangfusePromptSource:
        client = connect(host, public_key, secret_key, timeout_s)
        return cls(client, fallback, timeout_s, cache_ttl_s, retry_after_s, clock)

    def resolve(self, name: str, label: str) -> PromptTemplate:
        key = (name, label)
        cached = self._fresh(key)
        if cached is None:
            with self._fetching:
                cached = self._fresh(key) or self._fetch(name, label)
        if cached is not None and cached.template is not None:
            return cached.template
        return self._fallback.resolve(name, label)

    def _fresh(self, key: tuple[str, str]) -> _Cached | None:
        with self._lock:
            cached = self._cache.get(key)
        return cached if cached is not None and self._clock() < cached.expires else None

    def _fetch(self, name: str, label: str) -> _Cached | None:
        """The cache entry for (name, label) after asking Langfuse; None while it is down."""
        from langfuse.api import NotFoundError

        now = self._clock()
        with self._lock:
            if now < self._skip_until:
                return None
        version = pinned_version(label)
        try:
            prompt = self._client.get_prompt(
                name,
                **({"version": version} if version is not None else {"label": label}),
                type="text",
                cache_ttl_seconds=0,  # the TTL is ours (above), so the SDK cache stays out
                max_retries=0,
                fetch_timeout_seconds=self._timeout_s,
            )
        except NotFoundError:
            log.info(
                "langfuse has no such prompt; serving the local registry", prompt=name, label=label
            )
            return self._remember(name, label, None, now)
        except Exception as error:  # any client, network or server failure: use the local one
            with self._lock:
                self._skip_until = now + self._retry_after_s
            log.warning(
                "langfuse prompt unavailable; serving the local registry",
                prompt=name,
                label=label,
                retry_after_s=self._retry_after_s,
                error=f"{type(error).__name__}: {error}"[:300],
            )
            return None
        origin = f"Langfuse prompt {name}@{prompt.version} ({label})"
        try:
            template = template_from_langfuse(
                name, int(prompt.version), prompt.prompt, prompt.config, origin
            )
        except InvalidRequest as error:
            log.error("langfuse prompt refused; serving the local registry", error=str(error))
            return self._remember(name, label, None, now)
        return self._remember(name, label, template, now)

    def _remember(
        self, name: str, label: str, template: PromptTemplate | None, now: float
    ) -> _Cached:
        cached = _Cached(template, now + self._cache_ttl_s)
        with self._lock:
            self._cache[(name, label)] = cached
        return cached
