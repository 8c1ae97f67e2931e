"""The orchestrator's traces in Langfuse as well as in the OTEL_* collector (Jaeger, ...).

Langfuse ingests OpenTelemetry directly (OTLP/HTTP at /api/public/otel/v1/traces, HTTP basic
auth with the project's public and secret key), so this is a second OTLP exporter on the same
spans, not a second instrumentation. On the way out each span also gets Langfuse's names for
what it already carries: the prompt version it used (`name@N` -> Langfuse's prompt name and
version, which links the answer to that version in Langfuse's prompt management), the model,
token usage and the estimated cost.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import TracerProvider

from raildebug.observability import conventions as conv
from raildebug.observability.tracing import add_span_exporter
from raildebug.settings import OrchestratorSettings

OTLP_TRACES_PATH = "/api/public/otel/v1/traces"
INGESTION_VERSION = "4"  # what Langfuse asks direct OTLP exporters to send (x-langfuse-...)


def langfuse_exporter(
    endpoint: str, public_key: str, secret_key: str, timeout_s: float = 10.0
) -> SpanExporter:
    """OTLP/HTTP (protobuf) to Langfuse, with the attributes Langfuse reads added."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode("ascii")
    headers = {
        "Authorization": f"Basic {token}",
        "x-langfuse-ingestion-version": INGESTION_VERSION,
    }
    return LangfuseAttributes(
        OTLPSpanExporter(endpoint=endpoint, headers=headers, timeout=timeout_s)
    )


def export_traces_to_langfuse(
    settings: OrchestratorSettings, tracer_provider: TracerProvider | None = None
) -> bool:
    """Add the Langfuse exporter when `langfuse_traces` is set (to `tracer_provider`, or to the
    process-wide one); True when it was added."""
    if not settings.langfuse_traces:
        return False
    secret = settings.langfuse_secret_key.get_secret_value() if settings.langfuse_secret_key else ""
    endpoint = settings.langfuse_otlp_endpoint or (
        settings.langfuse_host.rstrip("/") + OTLP_TRACES_PATH if settings.langfuse_host else ""
    )
    if not endpoint or not settings.langfuse_public_key or not secret:
        raise ValueError(
            "langfuse_traces needs RAILDEBUG_ORCHESTRATOR_LANGFUSE_HOST (or "
            "_LANGFUSE_OTLP_ENDPOINT), _LANGFUSE_PUBLIC_KEY and _LANGFUSE_SECRET_KEY"
        )
    exporter = langfuse_exporter(endpoint, settings.langfuse_public_key, secret)
    add_span_exporter(exporter, "raildebug-orchestrator", tracer_provider)
    return True


class LangfuseAttributes(SpanExporter):
    """Wraps an exporter; adds Langfuse's attribute names to the spans it passes on."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([for_langfuse(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


def for_langfuse(span: ReadableSpan) -> ReadableSpan:
    """`span` with Langfuse's attributes for its prompt version, model, usage and cost."""
    from langfuse import LangfuseOtelSpanAttributes as LF  # imported only when exporting

    attributes = dict(span.attributes or {})
    extra: dict[str, Any] = {}
    ref = attributes.get(conv.ATTR_PROMPT_VERSION)
    if isinstance(ref, str):
        name, _, version = ref.rpartition("@")
        if name and version.isdigit():
            extra[LF.OBSERVATION_PROMPT_NAME] = name
            extra[LF.OBSERVATION_PROMPT_VERSION] = int(version)
    model = attributes.get(conv.ATTR_GEN_AI_RESPONSE_MODEL)
    if isinstance(model, str) and model:
        extra[LF.OBSERVATION_MODEL] = model
    usage = {
        key: attributes[attribute]
        for key, attribute in (
            ("input", conv.ATTR_GEN_AI_USAGE_INPUT_TOKENS),
            ("output", conv.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS),
        )
        if isinstance(attributes.get(attribute), int)
    }
    if usage:
        extra[LF.OBSERVATION_USAGE_DETAILS] = json.dumps(usage)
    cost = attributes.get(conv.ATTR_COST_USD)
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        extra[LF.OBSERVATION_COST_DETAILS] = json.dumps({"total": cost})
    if not extra:
        return span
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes={**attributes, **extra},
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
