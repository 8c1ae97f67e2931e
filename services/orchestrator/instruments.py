"""Orchestrator metrics (Prometheus via raildebug.observability.metrics, names from its
conventions); RPC durations by status and rate-limited calls come from the shared server
interceptors."""

from __future__ import annotations

from raildebug.observability import conventions as conv
from raildebug.observability.metrics import counter, histogram, meter

_meter = meter("raildebug.orchestrator")

answers = counter(_meter, conv.METRIC_DEBUG_ANSWERS)
time_to_first_token = histogram(_meter, conv.METRIC_DEBUG_TIME_TO_FIRST_TOKEN)
latency = histogram(_meter, conv.METRIC_DEBUG_DURATION)
token_usage = histogram(_meter, conv.METRIC_GEN_AI_CLIENT_TOKEN_USAGE)
cache_lookups = counter(_meter, conv.METRIC_CACHE_LOOKUPS)
