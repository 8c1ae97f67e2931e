"""Domain errors shared by the service cores.

Cores raise these instead of touching gRPC; the transport maps each class to one status code
(see raildebug.grpc_runtime.errors), so a core stays usable without a server.
"""

from __future__ import annotations

# A status message travels in a gRPC trailer, percent-encoded (up to 3 bytes per byte): past
# about 8 KiB the client drops the whole status ("Stream removed"). Every message is cut to
# this many UTF-8 bytes, and values echoed into one are cut much shorter by `clip`.
MAX_MESSAGE_BYTES = 2048
CLIP_CHARS = 80


def clip(value: object, limit: int = CLIP_CHARS) -> str:
    """`repr(value)` for an error message, at most about `limit` characters.

    Control characters show escaped; a cut value says how long it was, e.g.
    `'xxxxxxxx…' (1048576 characters)`.
    """
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…"


def bounded_message(message: str) -> str:
    """`message` cut to MAX_MESSAGE_BYTES of UTF-8 (on a character boundary)."""
    data = message.encode("utf-8", errors="replace")
    if len(data) <= MAX_MESSAGE_BYTES:
        return message
    suffix = " … (message truncated)"
    head = data[: MAX_MESSAGE_BYTES - len(suffix.encode())].decode("utf-8", errors="ignore")
    return head + suffix


class RailDebugError(Exception):
    """Base class: the message is shown to the caller, so it must say what to do.

    The message is bounded (`bounded_message`), so no error can outgrow a gRPC status.
    """

    def __init__(self, message: str = "", *args: object) -> None:
        super().__init__(bounded_message(str(message)), *args)


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


class Misconfigured(RailDebugError):
    """This service is set up wrong (an upstream refuses its credentials, say): an operator
    must change a setting, and the caller's retry will not help until then."""
