"""Per-client token-bucket rate limiting as a server interceptor.

Each client has a bucket of `burst` tokens refilled at `rate_per_s`; a call takes one token or is
refused with RESOURCE_EXHAUSTED and `retry-after-ms` saying when a token will be there. Buckets
live in process memory (one replica) or in Redis (shared by every replica, updated atomically
by a Lua script on the Redis clock).

The client is the authenticated one; a call without one counts against its peer address, or,
with `rate_limit_key=client_id`, against the client_id it declares (which the caller chooses,
so only where a trusted proxy sets it). Failed authentications are throttled per peer by the
same buckets (raildebug.grpc_runtime.auth).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

import grpc
import redis

from raildebug.errors import Overloaded
from raildebug.grpc_runtime.auth import authenticated_client
from raildebug.grpc_runtime.context import peer_address
from raildebug.grpc_runtime.interceptors import GuardInterceptor
from raildebug.limits import MAX_CLIENT_ID_CHARS, check_identifier
from raildebug.observability import conventions as conv
from raildebug.observability.logging import get_logger
from raildebug.observability.metrics import counter, meter
from raildebug.settings import ServerSettings

log = get_logger(__name__)

CLIENT_ID_METADATA = "x-client-id"

_rate_limited = counter(meter(__name__), conv.METRIC_RPC_RATE_LIMITED)


class TokenBuckets(Protocol):
    def take(self, client: str) -> float:
        """Take one token: 0.0 when granted, else seconds until one is available."""
        ...

    def wait(self, client: str) -> float:
        """Seconds until a token is available (0.0: one is), without taking it."""
        ...


class MemoryTokenBuckets:
    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 100_000,
    ) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, updated)
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        now = self._clock()
        with self._lock:
            tokens, updated = self._buckets.get(client, (self._burst, now))
            tokens = min(self._burst, tokens + (now - updated) * self._rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self._rate
            if len(self._buckets) >= self._max_clients and client not in self._buckets:
                self._forget_full_buckets(now)
            self._buckets[client] = (tokens, now)
        return wait

    def wait(self, client: str) -> float:
        now = self._clock()
        with self._lock:
            tokens, updated = self._buckets.get(client, (self._burst, now))
        tokens = min(self._burst, tokens + (now - updated) * self._rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self._rate

    def _forget_full_buckets(self, now: float) -> None:
        """A full bucket holds no state worth keeping; drop those to bound memory."""
        refill_s = self._burst / self._rate
        self._buckets = {
            client: state for client, state in self._buckets.items() if now - state[1] < refill_s
        }


# KEYS[1]: bucket hash; ARGV: rate per second, burst. Both scripts start by refilling the bucket
# to now; they return the wait in seconds as a string (Lua numbers would be truncated to
# integers on the way back).
_REFILL = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or burst
local updated = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
"""
_TAKE_SCRIPT = (
    _REFILL
    + """
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""
)

# The same arithmetic, read-only: seconds until the bucket holds a token.
_WAIT_SCRIPT = (
    _REFILL
    + """
if tokens >= 1 then
  return '0'
end
return tostring((1 - tokens) / rate)
"""
)


class RedisTokenBuckets:
    """Buckets shared by replicas. If Redis is unreachable, calls are let through (logged)."""

    def __init__(
        self, url: str, rate_per_s: float, burst: int, key_prefix: str = "raildebug:rl:"
    ) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._take = self._redis.register_script(_TAKE_SCRIPT)
        self._wait = self._redis.register_script(_WAIT_SCRIPT)
        self._rate = rate_per_s
        self._burst = burst
        self._prefix = key_prefix

    def take(self, client: str) -> float:
        try:
            wait = self._take(keys=[self._prefix + client], args=[self._rate, self._burst])
        except redis.RedisError as error:
            log.warning("rate limit store unreachable; letting the call through", error=str(error))
            return 0.0
        return float(wait)

    def wait(self, client: str) -> float:
        try:
            wait = self._wait(keys=[self._prefix + client], args=[self._rate, self._burst])
        except redis.RedisError as error:
            log.warning("rate limit store unreachable; letting the call through", error=str(error))
            return 0.0
        return float(wait)


def buckets_for(settings: ServerSettings) -> TokenBuckets:
    """The per-client call buckets (rate_limit_*)."""
    return _buckets(settings, settings.rate_limit_per_s, settings.rate_limit_burst, "rl")


def auth_failure_buckets(settings: ServerSettings) -> TokenBuckets | None:
    """The per-peer buckets of failed authentications (auth_failure_*); None when off."""
    if settings.auth_failure_per_s <= 0:
        return None
    return _buckets(settings, settings.auth_failure_per_s, settings.auth_failure_burst, "authfail")


def _buckets(settings: ServerSettings, rate_per_s: float, burst: int, kind: str) -> TokenBuckets:
    if settings.rate_limit_redis_url:
        return RedisTokenBuckets(
            settings.rate_limit_redis_url, rate_per_s, burst, key_prefix=f"raildebug:{kind}:"
        )
    return MemoryTokenBuckets(rate_per_s, burst)


def client_key(
    request: Any | None, context: grpc.ServicerContext, by: Literal["peer", "client_id"] = "peer"
) -> str:
    """Authenticated client; else the caller's address, or (by="client_id") the client_id it
    declares when it declares one."""
    client = authenticated_client.get()
    if client:
        return f"auth:{client}"
    if by == "client_id":
        declared = getattr(request, "client_id", "") if request is not None else ""
        if not declared:
            metadata = dict(context.invocation_metadata() or ())
            declared = str(metadata.get(CLIENT_ID_METADATA, ""))
        if declared:
            # The bucket key is stored (memory or Redis): an id past the limit is refused here,
            # before any bucket exists for it.
            check_identifier("client_id", declared, MAX_CLIENT_ID_CHARS)
            return f"id:{declared}"
    return "peer:" + peer_address(context)


class RateLimitInterceptor(GuardInterceptor):
    def __init__(self, buckets: TokenBuckets, by: Literal["peer", "client_id"] = "peer") -> None:
        self._buckets = buckets
        self._by: Literal["peer", "client_id"] = by

    def check(self, method: str, request: Any | None, context: grpc.ServicerContext) -> None:
        client = client_key(request, context, self._by)
        wait_s = self._buckets.take(client)
        if wait_s > 0:
            _rate_limited.add(1, {conv.ATTR_RPC_METHOD: method.lstrip("/")})
            raise Overloaded(
                f"rate limit reached for {client.split(':', 1)[1]!r}; "
                f"retry in {math.ceil(wait_s * 1000)} ms",
                retry_after_s=wait_s,
            )
