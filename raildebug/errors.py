"""Domain errors shared by the service cores.

Cores raise these instead of touching gRPC; the transport maps each class to one status code
(see raildebug.grpc_runtime.errors), so a core stays usable without a server.
"""

from __future__ import annotations


class RailDebugError(Exception):
    """Base class: the message is shown to the caller, so it must say what to do."""


class InvalidRequest(RailDebugError):
    """The request itself is wrong (empty question, k out of range, unknown filter field)."""


class NotFound(RailDebugError):
    """A named thing (source, request id, model file) does not exist."""


class Overloaded(RailDebugError):
    """No capacity now; the caller should retry after `retry_after_s` seconds."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotReady(RailDebugError):
    """The component is still loading, or a dependency it needs is down."""


class DeadlineExceeded(RailDebugError):
    """The caller's deadline passed before the work could finish."""


class Unauthenticated(RailDebugError):
    """The caller sent no credentials, or credentials nobody issued."""


class PermissionDenied(RailDebugError):
    """The caller is known but may not call this method."""
