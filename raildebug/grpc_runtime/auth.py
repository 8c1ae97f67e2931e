"""Bearer-token authentication of internal callers.

Tokens come from settings (`auth_tokens`, entries separated by ';') and/or a mounted secret file
(`auth_tokens_file`, one entry per line). An entry is `CLIENT TOKEN [METHOD_PREFIX ...]`: the
caller presenting TOKEN is CLIENT, and may call only methods starting with one of the prefixes
(all methods when none are given). Tokens never appear in logs or error messages.

Wrong tokens are throttled per peer address: after `auth_failure_burst` of them a peer regains
one attempt every 1 / `auth_failure_per_s` seconds, and until then every call it makes gets
RESOURCE_EXHAUSTED (with `retry-after-ms`) before its token is looked at, so guessing runs at
that rate whatever the answers. A missing token is no guess and is not counted.
"""

from __future__ import annotations

import hmac
import math
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from raildebug.errors import Overloaded, PermissionDenied, Unauthenticated
from raildebug.grpc_runtime.context import peer_address
from raildebug.grpc_runtime.interceptors import GuardInterceptor
from raildebug.settings import ServerSettings

AUTHORIZATION_METADATA = "authorization"
_BEARER = "bearer "

# Who the current RPC was authenticated as (set per call; read by the rate limiter).
authenticated_client: ContextVar[str | None] = ContextVar("authenticated_client", default=None)


@dataclass(frozen=True)
class TokenGrant:
    client: str
    token: str
    method_prefixes: tuple[str, ...] = ()

    def allows(self, method: str) -> bool:
        return not self.method_prefixes or method.startswith(self.method_prefixes)

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"TokenGrant(client={self.client!r}, method_prefixes={self.method_prefixes!r})"


def parse_grants(text: str, origin: str, separator: str = "\n") -> list[TokenGrant]:
    grants: list[TokenGrant] = []
    for number, raw in enumerate(text.split(separator), start=1):
        entry = raw.split("#", 1)[0].strip() if separator == "\n" else raw.strip()
        if not entry:
            continue
        parts = entry.split()
        if len(parts) < 2:
            raise ValueError(
                f"{origin} entry {number} must be 'CLIENT TOKEN [METHOD_PREFIX ...]'"
                " (the token is missing)"
            )
        grants.append(TokenGrant(parts[0], parts[1], tuple(parts[2:])))
    return grants


def load_grants(settings: ServerSettings) -> list[TokenGrant]:
    """Every configured grant; empty when authentication is off."""
    grants: list[TokenGrant] = []
    if settings.auth_tokens is not None:
        grants += parse_grants(settings.auth_tokens.get_secret_value(), "auth_tokens", ";")
    if settings.auth_tokens_file is not None:
        path = settings.auth_tokens_file
        if not path.is_file():
            raise ValueError(f"auth_tokens_file {path} does not exist; mount the token secret")
        grants += parse_grants(path.read_text(encoding="utf-8"), str(path))
    return grants


class FailureBuckets(Protocol):
    """Token buckets keyed by peer (raildebug.grpc_runtime.rate_limit's satisfy this)."""

    def take(self, client: str) -> float: ...

    def wait(self, client: str) -> float: ...


class BearerTokenInterceptor(GuardInterceptor):
    """UNAUTHENTICATED without a known token, PERMISSION_DENIED outside the token's methods,
    RESOURCE_EXHAUSTED for a peer that presented too many wrong tokens (when `failures`)."""

    def __init__(self, grants: list[TokenGrant], failures: FailureBuckets | None = None) -> None:
        if not grants:
            raise ValueError("bearer-token authentication needs at least one token")
        self._grants = grants
        self._failures = failures

    def check(self, method: str, request: Any | None, context: grpc.ServicerContext) -> None:
        peer = "peer:" + peer_address(context)
        if self._failures is not None:
            wait_s = self._failures.wait(peer)
            if wait_s > 0:
                raise Overloaded(
                    f"too many wrong bearer tokens from {peer.split(':', 1)[1]}; calls from "
                    f"this address are refused for {math.ceil(wait_s * 1000)} ms",
                    retry_after_s=wait_s,
                )
        presented = _bearer_token(context)
        if presented is None:
            raise Unauthenticated(
                "missing credentials: send metadata 'authorization: Bearer <token>'"
            )
        grant = self._match(presented)
        if grant is None:
            if self._failures is not None:
                self._failures.take(peer)
            raise Unauthenticated("the bearer token is not valid for this service")
        authenticated_client.set(grant.client)
        if not grant.allows(method):
            raise PermissionDenied(
                f"client {grant.client!r} may not call {method}; ask for a token that covers it"
            )

    def _match(self, presented: str) -> TokenGrant | None:
        found = None
        for grant in self._grants:  # constant time per token, and no early exit
            if hmac.compare_digest(grant.token.encode(), presented.encode()):
                found = grant
        return found


def _bearer_token(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == AUTHORIZATION_METADATA and isinstance(value, str):
            if value.lower().startswith(_BEARER):
                return value[len(_BEARER) :].strip()
            return None
    return None
