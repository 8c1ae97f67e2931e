"""OpenTelemetry metrics for every RailDebug process, scraped by Prometheus on a side port.

Services create instruments with `meter(__name__)`; `serve_metrics(port)` is called once per
process by the server runtime. Without it, instruments still work and record nothing exported.
"""

from __future__ import annotations

import threading

from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from prometheus_client import start_http_server

_lock = threading.Lock()
_configured = False


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
