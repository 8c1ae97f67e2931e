"""Reads what a core needs from a gRPC call context: its deadline and whether it is still wanted."""

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
