"""Cache of finished answers for repeated questions, in process memory or in Redis.

The key covers everything that shapes the answer: the normalized question, code and log, the
filters and k, the answer length limit, the prompt version and the model. Entries expire after a
TTL, so a corpus or model change is picked up without a flush.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Protocol

import redis

from raildebug.domain import FinishReason, GenerationOutcome
from raildebug.observability.logging import get_logger
from services.orchestrator.models import ContextPassage, DebugQuestion

log = get_logger(__name__)


@dataclass(frozen=True)
class CachedAnswer:
    passages: list[ContextPassage]
    deltas: list[str]  # as the analyzer streamed them, so a replay streams the same way
    generation: GenerationOutcome

    @property
    def answer(self) -> str:
        return "".join(self.deltas)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CachedAnswer:
        data = json.loads(text)
        return cls(
            passages=[ContextPassage(**p) for p in data["passages"]],
            deltas=list(data["deltas"]),
            generation=GenerationOutcome(
                **{
                    **data["generation"],
                    "finish_reason": FinishReason(data["generation"]["finish_reason"]),
                }
            ),
        )


class ResponseCache(Protocol):
    def get(self, key: str) -> CachedAnswer | None: ...

    def put(self, key: str, entry: CachedAnswer) -> None: ...


def cache_key(question: DebugQuestion, k: int, max_tokens: int, prompt_ref: str, model: str) -> str:
    f = question.filter
    material = {
        "question": _normalized(question.question),
        "code": question.code_snippet.strip(),
        "log": question.error_log.strip(),
        "kinds": sorted(f.kinds),
        "languages": sorted(f.languages),
        "source_prefix": f.source_prefix,
        "metadata": sorted(f.metadata.items()),
        "k": k,
        "max_tokens": max_tokens,
        "prompt": prompt_ref,
        "model": model,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _normalized(text: str) -> str:
    """Case and spacing do not change the question."""
    return " ".join(text.lower().split())


class MemoryResponseCache:
    def __init__(self, ttl_s: float, max_entries: int) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, CachedAnswer]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedAnswer | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            expires, entry = found
            if time.monotonic() >= expires:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: str, entry: CachedAnswer) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + self._ttl_s, entry)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)


class RedisResponseCache:
    """Shared by replicas. A Redis outage turns the cache off (logged), never the service."""

    def __init__(self, url: str, ttl_s: float, key_prefix: str = "raildebug:answer:") -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._prefix = key_prefix

    def get(self, key: str) -> CachedAnswer | None:
        try:
            raw = self._redis.get(self._prefix + key)
        except redis.RedisError as error:
            log.warning("response cache unreachable", error=str(error))
            return None
        if raw is None:
            return None
        return CachedAnswer.from_json(raw.decode() if isinstance(raw, bytes) else str(raw))

    def put(self, key: str, entry: CachedAnswer) -> None:
        try:
            self._redis.set(self._prefix + key, entry.to_json(), px=self._ttl_ms)
        except redis.RedisError as error:
            log.warning("response cache unreachable", error=str(error))
