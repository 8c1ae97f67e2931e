"""Server interceptors: domain errors become gRPC statuses, and every RPC gets an access log."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from raildebug.errors import Overloaded, RailDebugError
from raildebug.grpc_runtime.errors import RETRY_AFTER_METADATA, status_for
from raildebug.telemetry import get_logger

log = get_logger(__name__)


class ErrorMappingInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Lets servicers raise RailDebugError and still answer with the right status and message.

    Also writes one structured log line per RPC with method, status and duration, so the
    servicers themselves stay free of logging and error plumbing.
    """

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(handler.stream_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                _wrap_stream(handler.stream_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def _abort(
    context: grpc.ServicerContext, error: RailDebugError, method: str, started: float
) -> None:
    status = status_for(error)
    if isinstance(error, Overloaded):
        context.set_trailing_metadata(
            ((RETRY_AFTER_METADATA, str(int(error.retry_after_s * 1000))),)
        )
    _log_done(method, status, started, error=str(error))
    context.abort(status, str(error))


def _log_done(method: str, status: grpc.StatusCode, started: float, **fields: Any) -> None:
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    level = log.info if status == grpc.StatusCode.OK else log.warning
    level("rpc", method=method, status=status.name, duration_ms=elapsed_ms, **fields)


def _wrap_unary(behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
        started = time.perf_counter()
        try:
            response = behavior(request, context)
        except RailDebugError as error:
            _abort(context, error, method, started)
            raise  # unreachable: abort raises
        _log_done(method, context.code() or grpc.StatusCode.OK, started)
        return response

    return wrapped


def _wrap_stream(behavior: Callable[..., Iterator[Any]], method: str) -> Callable[..., Any]:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        started = time.perf_counter()
        try:
            yield from behavior(request, context)
        except RailDebugError as error:
            _abort(context, error, method, started)
            return
        status = grpc.StatusCode.OK if context.is_active() else grpc.StatusCode.CANCELLED
        _log_done(method, context.code() or status, started)

    return wrapped
