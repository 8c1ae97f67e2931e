"""Orchestrator metrics (Prometheus via raildebug.observability.metrics); RPC counts by
status, durations and rate-limited calls come from the shared server interceptors."""

from __future__ import annotations

from raildebug.observability.metrics import meter

_meter = meter("raildebug.orchestrator")

answers = _meter.create_counter(
    "raildebug_debug_answers", unit="{answer}", description="Answers by variant and outcome."
)
time_to_first_token = _meter.create_histogram(
    "raildebug_debug_ttft", unit="ms", description="Debug call start to first answer text."
)
latency = _meter.create_histogram(
    "raildebug_debug_latency", unit="ms", description="Debug call start to final event."
)
tokens = _meter.create_counter(
    "raildebug_tokens", unit="{token}", description="Prompt and completion tokens by model."
)
cache_lookups = _meter.create_counter(
    "raildebug_cache_lookups", unit="{lookup}", description="Response cache lookups by result."
)
