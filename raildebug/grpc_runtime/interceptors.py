"""Server interceptors: domain errors become gRPC statuses, and every RPC gets an access log
and request metrics. `GuardInterceptor` is the base of checks that run before a handler
(authentication, rate limits) and reject by raising a domain error."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from raildebug.errors import Overloaded, RailDebugError
from raildebug.grpc_runtime.errors import RETRY_AFTER_METADATA, status_for
from raildebug.observability import conventions as conv
from raildebug.observability.logging import get_logger
from raildebug.observability.metrics import histogram, meter

log = get_logger(__name__)

_duration = histogram(meter(__name__), conv.METRIC_RPC_SERVER_CALL_DURATION)

# Probes and tooling are never authenticated, rate limited or counted as traffic.
EXEMPT_SERVICE_PREFIXES = ("/grpc.health.", "/grpc.reflection.")

Continuation = Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None]
Behavior = Callable[..., Any]


def is_exempt(method: str) -> bool:
    return method.startswith(EXEMPT_SERVICE_PREFIXES)


def rewrap_handler(
    handler: grpc.RpcMethodHandler,
    wrap_unary: Callable[[Behavior], Behavior],
    wrap_stream: Callable[[Behavior], Behavior],
) -> grpc.RpcMethodHandler:
    """The same handler with its behavior wrapped (unary or streaming response)."""
    kinds: tuple[tuple[str, Callable[..., grpc.RpcMethodHandler], bool], ...] = (
        ("unary_unary", grpc.unary_unary_rpc_method_handler, False),
        ("unary_stream", grpc.unary_stream_rpc_method_handler, True),
        ("stream_unary", grpc.stream_unary_rpc_method_handler, False),
        ("stream_stream", grpc.stream_stream_rpc_method_handler, True),
    )
    for attribute, factory, streams in kinds:
        behavior = getattr(handler, attribute)
        if behavior:
            return factory(
                (wrap_stream if streams else wrap_unary)(behavior),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler


class ErrorMappingInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Lets servicers raise RailDebugError and still answer with the right status and message.

    Also writes one structured log line and the request metrics per RPC, so the servicers
    themselves stay free of logging and error plumbing.
    """

    def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        return rewrap_handler(
            handler, lambda b: _wrap_unary(b, method), lambda b: _wrap_stream(b, method)
        )


class GuardInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Runs `check` before every non-exempt RPC; `check` rejects by raising a RailDebugError.

    Install it inside ErrorMappingInterceptor so rejections get their status and access log.
    `request` is the request message, or None when the client streams requests.
    """

    def check(self, method: str, request: Any | None, context: grpc.ServicerContext) -> None:
        raise NotImplementedError

    def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or is_exempt(method):
            return handler
        message_request = not handler.request_streaming

        def wrap_unary(behavior: Behavior) -> Behavior:
            def guarded(request: Any, context: grpc.ServicerContext) -> Any:
                self.check(method, request if message_request else None, context)
                return behavior(request, context)

            return guarded

        def wrap_stream(behavior: Behavior) -> Behavior:
            def guarded(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                self.check(method, request if message_request else None, context)
                yield from behavior(request, context)

            return guarded

        return rewrap_handler(handler, wrap_unary, wrap_stream)


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
    elapsed_s = time.perf_counter() - started
    level = log.info if status == grpc.StatusCode.OK else log.warning
    level(
        "rpc", method=method, status=status.name, duration_ms=round(elapsed_s * 1000, 1), **fields
    )
    if not is_exempt(method):
        _duration.record(
            elapsed_s,
            {
                conv.ATTR_RPC_SYSTEM_NAME: conv.RPC_SYSTEM_GRPC,
                conv.ATTR_RPC_METHOD: method.lstrip("/"),
                conv.ATTR_RPC_RESPONSE_STATUS_CODE: status.name,
            },
        )


def _wrap_unary(behavior: Behavior, method: str) -> Behavior:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
        started = time.perf_counter()
        try:
            response = behavior(request, context)
        except RailDebugError as error:
            _abort(context, error, method, started)
            raise  # unreachable: abort raises
        except Exception as error:
            _log_unexpected(context, error, method, started)
            raise
        _log_done(method, _final_status(context), started)
        return response

    return wrapped


def _wrap_stream(behavior: Behavior, method: str) -> Behavior:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        started = time.perf_counter()
        try:
            yield from behavior(request, context)
        except RailDebugError as error:
            _abort(context, error, method, started)
            return
        except GeneratorExit:
            # grpc stops reading a stream whose caller cancelled, disconnected or ran out of
            # time, and drops (closes) the generator: the RPC still gets its line.
            _log_done(method, _final_status(context, ended_early=True), started)
            raise
        except Exception as error:
            _log_unexpected(context, error, method, started)
            raise
        _log_done(method, _final_status(context), started)

    return wrapped


def _final_status(context: grpc.ServicerContext, ended_early: bool = False) -> grpc.StatusCode:
    """What the RPC ended with: a status the handler set, else CANCELLED when the caller left
    (or its deadline passed), else OK."""
    code = context.code()
    if code is not None:
        return code
    if ended_early or not context.is_active():
        return _ended_early(context)
    return grpc.StatusCode.OK


def _ended_early(context: grpc.ServicerContext) -> grpc.StatusCode:
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


def _log_unexpected(
    context: grpc.ServicerContext, error: Exception, method: str, started: float
) -> None:
    """A bug, not a domain error: grpc answers UNKNOWN; the access log still says so."""
    status = context.code()  # a handler that called context.abort itself set one
    if status is None:
        status = grpc.StatusCode.UNKNOWN if context.is_active() else _ended_early(context)
    _log_done(method, status, started, error=f"{type(error).__name__}: {error}")
