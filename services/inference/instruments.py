"""OpenTelemetry instruments of the inference service (scraped from /metrics on metrics_port).

Names follow OpenTelemetry's gen_ai conventions where they exist; the Prometheus exporter turns
dots into underscores and appends units (e.g. raildebug_inference_time_to_first_token_seconds).
"""

from __future__ import annotations

from raildebug.observability.metrics import meter

_meter = meter("raildebug.inference")

queue_size = _meter.create_up_down_counter(
    "raildebug.inference.queue.size", unit="{request}", description="Requests waiting for a slot."
)
busy_slots = _meter.create_up_down_counter(
    "raildebug.inference.slots.busy", unit="{slot}", description="Slots generating now."
)
queue_wait = _meter.create_histogram(
    "raildebug.inference.queue.wait", unit="s", description="Time from arrival to getting a slot."
)
time_to_first_token = _meter.create_histogram(
    "raildebug.inference.time_to_first_token",
    unit="s",
    description="Time from arrival to the first generated token.",
)
inter_token_latency = _meter.create_histogram(
    "raildebug.inference.inter_token_latency",
    unit="s",
    description="Time between consecutive generated tokens of one request.",
)
prompt_tokens = _meter.create_counter(
    "raildebug.inference.tokens.prompt", unit="{token}", description="Prompt tokens received."
)
cached_prompt_tokens = _meter.create_counter(
    "raildebug.inference.tokens.cached",
    unit="{token}",
    description="Prompt tokens served from a reused KV prefix instead of being evaluated.",
)
completion_tokens = _meter.create_counter(
    "raildebug.inference.tokens.completion", unit="{token}", description="Tokens generated."
)
rejected = _meter.create_counter(
    "raildebug.inference.rejected",
    unit="{request}",
    description="Requests refused with RESOURCE_EXHAUSTED because slots and queue were full.",
)
