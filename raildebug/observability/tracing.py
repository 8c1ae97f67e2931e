"""OpenTelemetry tracing for every RailDebug process.

Spans are exported over OTLP to the collector named by the standard OTEL_* variables
(OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL,
OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, ...). Without an endpoint, or with
OTEL_SDK_DISABLED=true / OTEL_TRACES_EXPORTER=none, tracing stays off and costs nothing.
A second backend (Langfuse) is added with `add_span_exporter`.
Servers and channels take an explicit TracerProvider so tests can capture spans in memory.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import server_interceptor as otel_server_interceptor
from opentelemetry.instrumentation.grpc.filters import any_of, negate, service_prefix
from opentelemetry.propagate import inject
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from raildebug.observability import conventions as conv
from raildebug.observability.logging import get_logger

log = get_logger(__name__)

_lock = threading.Lock()
_configured = False

# Probes and tooling calls would drown the request traces.
_UNTRACED = any_of(service_prefix("grpc.health."), service_prefix("grpc.reflection."))


def otlp_endpoint_configured() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").lower() == "none":
        return False
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def configure_tracing(service: str) -> None:
    """Install the process-wide OTLP TracerProvider once, when the environment asks for one."""
    global _configured
    with _lock:
        if _configured or not otlp_endpoint_configured():
            return
        _process_provider(service).add_span_processor(BatchSpanProcessor(_otlp_exporter()))
        _configured = True
        log.info("tracing", exporter="otlp", service=service)


def add_span_exporter(
    exporter: SpanExporter, service: str, provider: trace.TracerProvider | None = None
) -> None:
    """Send spans to `exporter` as well: a second backend beside the OTEL_* collector, such as
    Langfuse. The spans of `provider`, or of the process-wide provider (installed now when the
    environment configured none). Nothing happens with OTEL_SDK_DISABLED=true."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    with _lock:
        target = _process_provider(service) if provider is None else provider
        if not isinstance(target, TracerProvider):
            raise TypeError(f"cannot add an exporter to {type(target).__name__}: not an SDK one")
        target.add_span_processor(BatchSpanProcessor(exporter))


def _process_provider(service: str) -> TracerProvider:
    """The process-wide SDK TracerProvider, installed on first use."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    provider = TracerProvider(resource=Resource.create(attributes))
    trace.set_tracer_provider(provider)
    return provider


def _otlp_exporter() -> Any:
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    )
    if protocol.startswith("http"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcSpanExporter,
    )

    return GrpcSpanExporter()


def get_tracer(name: str, provider: trace.TracerProvider | None = None) -> trace.Tracer:
    """A tracer from `provider`, or from the process-wide one (a no-op until configured)."""
    return trace.get_tracer(name, tracer_provider=provider)


def server_interceptor(provider: trace.TracerProvider | None = None) -> grpc.ServerInterceptor:
    """Continues the caller's trace (W3C traceparent metadata) in a server span per RPC."""
    interceptor: grpc.ServerInterceptor = otel_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=provider, filter_=negate(_UNTRACED)
    )
    return interceptor


def traced_channel(
    channel: grpc.Channel, provider: trace.TracerProvider | None = None
) -> grpc.Channel:
    """`channel` with a client span per call whose context travels to the server."""
    return grpc.intercept_channel(channel, ClientTracingInterceptor(get_tracer(__name__, provider)))


class ClientTracingInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Client span per call, ended when the call completes, with W3C context in the metadata.

    opentelemetry-instrumentation-grpc's client interceptor turns server-streaming calls into
    plain generators, which lose `cancel()`, `code()` and trailing metadata that our clients
    rely on (freeing the model when a caller goes away). This one returns grpc's own call
    objects and follows the same rpc.* span conventions.
    """

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def _traced(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        method = str(details.method)
        if method.startswith(("/grpc.health.", "/grpc.reflection.")):
            return continuation(details, request)
        service, _, name = method.lstrip("/").partition("/")
        span = self._tracer.start_span(
            method.lstrip("/"),
            kind=SpanKind.CLIENT,
            attributes={
                conv.ATTR_RPC_SYSTEM: conv.RPC_SYSTEM_GRPC,
                conv.ATTR_RPC_SERVICE: service,
                conv.ATTR_RPC_METHOD: name,
            },
        )
        carrier: dict[str, str] = {}
        inject(carrier, context=trace.set_span_in_context(span))
        metadata = [*(details.metadata or ()), *carrier.items()]
        try:
            call = continuation(details._replace(metadata=metadata), request)
        except BaseException:
            span.end()
            raise
        call.add_done_callback(lambda done: _end_client_span(span, done))
        return call

    intercept_unary_unary = _traced
    intercept_unary_stream = _traced
    intercept_stream_unary = _traced
    intercept_stream_stream = _traced


def _end_client_span(span: trace.Span, call: Any) -> None:
    code = call.code()
    if code is not None:
        span.set_attribute(conv.ATTR_RPC_GRPC_STATUS_CODE, code.value[0])
        if code != grpc.StatusCode.OK:
            span.set_status(Status(StatusCode.ERROR, f"{code.name}: {call.details()}"))
    span.end()
