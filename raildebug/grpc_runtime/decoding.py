"""Requests are parsed inside the RPC, so a bad body is the caller's INVALID_ARGUMENT.

grpc-python parses a request before any interceptor or servicer runs, and answers bytes that are
not the method's message (or a string field holding invalid UTF-8) with INTERNAL "Exception
deserializing request!" and a stack trace in the server log. `RequestDecodingInterceptor` hands
grpc an identity deserializer instead and parses in the handler, raising InvalidRequest; install
it inside ErrorMappingInterceptor (which turns that into the status and the access log) and
outside the guards (they read the parsed request, e.g. its client_id).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc

from raildebug.errors import InvalidRequest, clip

Continuation = Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None]
Parse = Callable[[bytes], Any]

_FACTORIES: tuple[tuple[str, Callable[..., grpc.RpcMethodHandler]], ...] = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler),
    ("unary_stream", grpc.unary_stream_rpc_method_handler),
    ("stream_unary", grpc.stream_unary_rpc_method_handler),
    ("stream_stream", grpc.stream_stream_rpc_method_handler),
)


def message_name(deserializer: Callable[[bytes], Any], method: str) -> str:
    """'raildebug.v1.SearchRequest' for SearchRequest.FromString; else the method's request."""
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    full_name = getattr(descriptor, "full_name", "")
    return str(full_name) if full_name else f"{method} request"


def checked_parser(deserializer: Callable[[bytes], Any], method: str) -> Parse:
    """`deserializer` raising InvalidRequest, with a message that says what was expected."""
    name = message_name(deserializer, method)

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as error:  # DecodeError, invalid UTF-8, nesting too deep, ...
            raise InvalidRequest(
                f"the request body ({len(data)} bytes) is not a valid {name} message "
                f"({clip(str(error) or type(error).__name__, 120)}); send the serialized "
                "protobuf of the method's request type, with string fields in UTF-8"
            ) from None

    return parse


class RequestDecodingInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        parse = checked_parser(handler.request_deserializer, handler_call_details.method)
        for attribute, factory in _FACTORIES:
            behavior = getattr(handler, attribute)
            if behavior:
                wrap = _wrap_stream_request if handler.request_streaming else _wrap_request
                return factory(
                    wrap(behavior, parse),
                    request_deserializer=None,  # bytes reach the wrapper as they came
                    response_serializer=handler.response_serializer,
                )
        return handler


def _wrap_request(behavior: Callable[..., Any], parse: Parse) -> Callable[..., Any]:
    def parsed(request: bytes, context: grpc.ServicerContext) -> Any:
        return behavior(parse(request), context)

    return parsed


def _wrap_stream_request(behavior: Callable[..., Any], parse: Parse) -> Callable[..., Any]:
    def parsed(requests: Iterable[bytes], context: grpc.ServicerContext) -> Any:
        return behavior(_parse_each(requests, parse), context)

    return parsed


def _parse_each(requests: Iterable[bytes], parse: Parse) -> Iterator[Any]:
    for data in requests:
        yield parse(data)
