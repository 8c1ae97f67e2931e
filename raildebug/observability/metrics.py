"""OpenTelemetry metrics for every RailDebug process, scraped by Prometheus on a side port.

Services create their instruments in their `instruments.py` with `counter`, `histogram`,
`up_down_counter` or `gauge` from a spec of raildebug.observability.conventions (the only place
that names metrics); `serve_metrics(port)` is called once per process by the server runtime.
Without it, instruments still work and record nothing exported.
"""

from __future__ import annotations

import threading

from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import _Gauge as Gauge
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from prometheus_client import start_http_server

from raildebug.observability.conventions import METRICS, InstrumentKind, MetricSpec

_lock = threading.Lock()
_configured = False
_created: dict[str, MetricSpec] = {}


def serve_metrics(service: str, host: str, port: int) -> None:
    """Expose this process's metrics at http://host:port/metrics (port 0 disables)."""
    global _configured
    with _lock:
        if _configured or port == 0:
            return
        provider = MeterProvider(
            resource=Resource.create({SERVICE_NAME: f"raildebug-{service}"}),
            metric_readers=[PrometheusMetricReader()],
        )
        metrics.set_meter_provider(provider)
        start_http_server(port=port, addr=host)
        _configured = True


def meter(name: str) -> metrics.Meter:
    return metrics.get_meter(name)


def counter(meter: metrics.Meter, spec: MetricSpec) -> metrics.Counter:
    _register(spec, "counter")
    return meter.create_counter(spec.name, unit=spec.unit, description=spec.description)


def up_down_counter(meter: metrics.Meter, spec: MetricSpec) -> metrics.UpDownCounter:
    _register(spec, "up_down_counter")
    return meter.create_up_down_counter(spec.name, unit=spec.unit, description=spec.description)


def histogram(meter: metrics.Meter, spec: MetricSpec) -> metrics.Histogram:
    _register(spec, "histogram")
    return meter.create_histogram(
        spec.name,
        unit=spec.unit,
        description=spec.description,
        explicit_bucket_boundaries_advisory=spec.buckets or None,
    )


def gauge(meter: metrics.Meter, spec: MetricSpec) -> Gauge:
    _register(spec, "gauge")
    return meter.create_gauge(spec.name, unit=spec.unit, description=spec.description)


def created_metrics() -> dict[str, MetricSpec]:
    """Every metric this process has created an instrument for, by name."""
    return dict(_created)


def _register(spec: MetricSpec, kind: InstrumentKind) -> None:
    if spec not in METRICS:
        raise ValueError(f"{spec.name}: define metrics in raildebug.observability.conventions")
    if spec.kind != kind:
        raise ValueError(f"{spec.name} is a {spec.kind}, not a {kind}")
    _created[spec.name] = spec
