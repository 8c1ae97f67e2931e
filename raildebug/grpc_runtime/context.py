"""Reads what a call context says: the deadline, whether the RPC is still wanted, who called."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import grpc


def absolute_deadline(context: grpc.ServicerContext, default_s: float | None) -> float | None:
    """The caller's deadline on the time.monotonic() clock (or `default_s` from now)."""
    remaining = context.time_remaining()
    if remaining is None or remaining > 10**8:  # grpc reports "no deadline" as a huge number
        return None if default_s is None else time.monotonic() + default_s
    return time.monotonic() + float(remaining)


def cancellation_flag(context: grpc.ServicerContext) -> Callable[[], bool]:
    """True once the RPC has ended early: client cancel, disconnect or passed deadline."""
    ended = threading.Event()
    context.add_callback(ended.set)
    return ended.is_set


def peer_address(context: grpc.ServicerContext) -> str:
    """The caller's address without its port ("ipv4:10.0.0.7", "ipv6:[::1]"), as gRPC saw the
    connection: behind a proxy that is the proxy's address."""
    peer = context.peer() or "unknown"
    if peer.startswith(("ipv4:", "ipv6:")):
        return peer.rsplit(":", 1)[0]
    return peer  # unix:/path and the like have no port
