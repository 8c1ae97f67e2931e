"""The one mapping between domain errors and gRPC status codes, both directions."""

from __future__ import annotations

import grpc

from raildebug.errors import (
    DeadlineExceeded,
    InvalidRequest,
    Misconfigured,
    NotFound,
    NotReady,
    Overloaded,
    PermissionDenied,
    RailDebugError,
    Unauthenticated,
)

RETRY_AFTER_METADATA = "retry-after-ms"

_STATUS_BY_ERROR: dict[type[RailDebugError], grpc.StatusCode] = {
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    NotReady: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    Misconfigured: grpc.StatusCode.INTERNAL,
}


def status_for(error: RailDebugError) -> grpc.StatusCode:
    for error_type, status in _STATUS_BY_ERROR.items():
        if isinstance(error, error_type):
            return status
    return grpc.StatusCode.INTERNAL


# Read backwards, except INTERNAL: an upstream's internal error says nothing about our setup.
_ERROR_BY_STATUS: dict[grpc.StatusCode, type[RailDebugError]] = {
    status: error_type
    for error_type, status in _STATUS_BY_ERROR.items()
    if status is not grpc.StatusCode.INTERNAL
}


def error_from_rpc(error: grpc.RpcError, upstream: str) -> RailDebugError:
    """Turn a failed upstream call into the domain error the calling core understands.

    The inverse of `status_for`, read from the same table; a status the table does not name
    (UNAVAILABLE, INTERNAL, UNKNOWN, CANCELLED) means the upstream cannot answer now.
    """
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    error_type = _ERROR_BY_STATUS.get(code)
    if error_type is Overloaded:
        return Overloaded(f"{upstream}: {details}", retry_after_s=_retry_after_s(error))
    if error_type is None or error_type is NotReady:
        return NotReady(f"{upstream} unavailable ({code.name}): {details}")
    return error_type(f"{upstream}: {details}")


def _retry_after_s(error: grpc.RpcError) -> float:
    trailing = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == RETRY_AFTER_METADATA:
            return float(value) / 1000.0
    return 1.0
