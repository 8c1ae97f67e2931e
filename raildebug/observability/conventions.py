"""Every metric and span attribute name RailDebug emits, defined once; services never spell one.

The convention:

- OpenTelemetry semantic conventions where one exists: `gen_ai.*` for generation (the
  inference service is a GenAI model server, the orchestrator its client), `rpc.*` for gRPC,
  `error.type` for failures. Metric names follow the current conventions (`rpc.server.call
  .duration`, in seconds); the rpc span attributes of our client spans follow the ones that
  opentelemetry-instrumentation-grpc puts on the server spans (`rpc.system`, `rpc.service`,
  `rpc.method`, `rpc.grpc.status_code`), so both ends of a call agree.
- Everything of our own under `raildebug.<area>.*`: `rpc` (our RPC guards), `inference`,
  `retrieval`, `debug` (a Debug request end to end), `prompt`, `cache`, `feedback`.
- Names are lower case, dots between namespaces, underscores inside a word group. Every duration
  is in seconds (unit "s", attributes too); counts use UCUM annotations such as "{token}".
- Every duration histogram carries bucket boundaries in seconds (the SDK's defaults are meant
  for milliseconds).

The Prometheus exporter turns dots into underscores and adds `_seconds` for unit "s" and
`_total` for counters: `gen_ai.server.time_to_first_token` is scraped as
`gen_ai_server_time_to_first_token_seconds`; `prometheus_name` says what a metric is called there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

# --- units --------------------------------------------------------------------------------

SECONDS: Final = "s"
ANSWERS: Final = "{answer}"
CALLS: Final = "{call}"
CHUNKS: Final = "{chunk}"
DOCUMENTS: Final = "{document}"
LOOKUPS: Final = "{lookup}"
PASSAGES: Final = "{passage}"
REQUESTS: Final = "{request}"
SLOTS: Final = "{slot}"
TOKENS: Final = "{token}"

# --- span and metric attributes: OpenTelemetry semantic conventions ------------------------

ATTR_ERROR_TYPE: Final = "error.type"

ATTR_GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
ATTR_GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
ATTR_GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
ATTR_GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
ATTR_GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
ATTR_GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"  # string[]
ATTR_GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
ATTR_GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
ATTR_GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"

GEN_AI_OPERATION_CHAT: Final = "chat"
GEN_AI_OPERATION_TEXT_COMPLETION: Final = "text_completion"
GEN_AI_PROVIDER_LLAMA_CPP: Final = "llama.cpp"
GEN_AI_PROVIDER_OPENAI: Final = "openai"
GEN_AI_TOKEN_TYPE_INPUT: Final = "input"
GEN_AI_TOKEN_TYPE_OUTPUT: Final = "output"

# rpc metrics (current conventions)
ATTR_RPC_SYSTEM_NAME: Final = "rpc.system.name"
ATTR_RPC_METHOD: Final = "rpc.method"  # metrics: "raildebug.v1.Inference/Generate"
ATTR_RPC_RESPONSE_STATUS_CODE: Final = "rpc.response.status_code"  # "OK", "UNAVAILABLE"...
# rpc spans (as opentelemetry-instrumentation-grpc writes them on the server side)
ATTR_RPC_SYSTEM: Final = "rpc.system"
ATTR_RPC_SERVICE: Final = "rpc.service"  # spans: "raildebug.v1.Inference", rpc.method "Generate"
ATTR_RPC_GRPC_STATUS_CODE: Final = "rpc.grpc.status_code"  # the numeric code
RPC_SYSTEM_GRPC: Final = "grpc"

# --- span and metric attributes: RailDebug's own -------------------------------------------

ATTR_REQUEST_ID: Final = "raildebug.request_id"
ATTR_CLIENT_ID: Final = "raildebug.client_id"
ATTR_ANALYZER: Final = "raildebug.analyzer"
ATTR_DEGRADED: Final = "raildebug.degraded"
ATTR_DEGRADED_REASON: Final = "raildebug.degraded_reason"
ATTR_COST_USD: Final = "raildebug.cost_usd"
ATTR_CACHE_HIT: Final = "raildebug.cache.hit"
ATTR_PROMPT_VERSION: Final = "raildebug.prompt.version"
ATTR_PROMPT_VARIANT: Final = "raildebug.prompt.variant"
ATTR_PROMPT_CHARS: Final = "raildebug.prompt.chars"
ATTR_PROMPT_PASSAGES: Final = "raildebug.prompt.passages"
ATTR_PROMPT_UNKNOWN_IDENTIFIERS: Final = "raildebug.prompt.unknown_identifiers"
ATTR_FEEDBACK_SCORE: Final = "raildebug.feedback.score"
ATTR_DEBUG_DURATION: Final = "raildebug.debug.duration"  # s
ATTR_DEBUG_TIME_TO_FIRST_TOKEN: Final = "raildebug.debug.time_to_first_token"  # s
ATTR_GENERATION_TIME_TO_FIRST_TOKEN: Final = "raildebug.generation.time_to_first_token"  # s
ATTR_DRAFT_OUTCOME: Final = "raildebug.draft.outcome"  # accepted | rejected
ATTR_RETRIEVAL_K: Final = "raildebug.retrieval.k"
ATTR_RETRIEVAL_ALPHA: Final = "raildebug.retrieval.alpha"
ATTR_RETRIEVAL_TIMEOUT: Final = "raildebug.retrieval.timeout"  # s
ATTR_RETRIEVAL_PASSAGES: Final = "raildebug.retrieval.passages"
ATTR_RETRIEVAL_MODE: Final = "raildebug.retrieval.mode"  # keyword | vector | hybrid
ATTR_RETRIEVAL_FUSION: Final = "raildebug.retrieval.fusion"  # relativeScoreFusion | rankedFusion
ATTR_RETRIEVAL_LEG: Final = "raildebug.retrieval.leg"  # keyword | vector
ATTR_RETRIEVAL_INGEST_OUTCOME: Final = "raildebug.retrieval.ingest.outcome"

RETRIEVAL_MODE_KEYWORD: Final = "keyword"
RETRIEVAL_MODE_VECTOR: Final = "vector"
RETRIEVAL_MODE_HYBRID: Final = "hybrid"
INGEST_WRITTEN: Final = "written"
INGEST_UNCHANGED: Final = "unchanged"
INGEST_DUPLICATE: Final = "duplicate"
INGEST_FAILED: Final = "failed"

# Every attribute name above.
ATTRIBUTES: Final[tuple[str, ...]] = tuple(
    value for key, value in dict(globals()).items() if key.startswith("ATTR_")
)

# --- metrics --------------------------------------------------------------------------------

InstrumentKind = Literal["counter", "up_down_counter", "histogram", "gauge"]


@dataclass(frozen=True)
class MetricSpec:
    """One instrument: created only through raildebug.observability.metrics from this spec."""

    name: str
    kind: InstrumentKind
    unit: str
    description: str
    buckets: tuple[float, ...] = ()  # explicit histogram boundaries, in `unit`

    @property
    def is_duration(self) -> bool:
        return self.unit == SECONDS

    @property
    def prometheus_name(self) -> str:
        """The family name on /metrics (histograms add _bucket, _count and _sum)."""
        name = self.name.replace(".", "_")
        if self.unit == SECONDS:
            name += "_seconds"
        if self.kind == "counter":
            name += "_total"
        return name


# Boundaries from the semantic conventions where they give some.
_GEN_AI_DURATION_BUCKETS = tuple(0.01 * 2**i for i in range(14))  # 0.01 s .. 81.92 s
_GEN_AI_TTFT_BUCKETS = (
    *(0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0),
    *(2.5, 5.0, 7.5, 10.0),
)
_GEN_AI_TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
_GEN_AI_TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1 .. 67108864
# rpc.server.call.duration's recommendation, extended for streams that run for minutes on CPU.
_RPC_DURATION_BUCKETS = (
    *(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0),
    *(30.0, 60.0, 120.0),
)
_SEARCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_INGEST_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
_PASSAGE_BUCKETS = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 20.0, 50.0, 100.0)

# every server (raildebug.grpc_runtime)
METRIC_RPC_SERVER_CALL_DURATION: Final = MetricSpec(
    "rpc.server.call.duration",
    "histogram",
    SECONDS,
    "Server RPC wall time by method and status (its count is the number of RPCs).",
    _RPC_DURATION_BUCKETS,
)
METRIC_RPC_RATE_LIMITED: Final = MetricSpec(
    "raildebug.rpc.rate_limited", "counter", CALLS, "Calls refused by the rate limit."
)

# inference: a GenAI model server
METRIC_GEN_AI_SERVER_REQUEST_DURATION: Final = MetricSpec(
    "gen_ai.server.request.duration",
    "histogram",
    SECONDS,
    "Generation time from arrival to the last token (error.type set when it did not complete).",
    _GEN_AI_DURATION_BUCKETS,
)
METRIC_GEN_AI_SERVER_TIME_TO_FIRST_TOKEN: Final = MetricSpec(
    "gen_ai.server.time_to_first_token",
    "histogram",
    SECONDS,
    "Time from arrival to the first generated token, queueing included.",
    _GEN_AI_TTFT_BUCKETS,
)
METRIC_GEN_AI_SERVER_TIME_PER_OUTPUT_TOKEN: Final = MetricSpec(
    "gen_ai.server.time_per_output_token",
    "histogram",
    SECONDS,
    "Mean time per output token after the first, per completed generation.",
    _GEN_AI_TPOT_BUCKETS,
)
METRIC_INFERENCE_QUEUE_SIZE: Final = MetricSpec(
    "raildebug.inference.queue.size", "up_down_counter", REQUESTS, "Requests waiting for a slot."
)
METRIC_INFERENCE_QUEUE_WAIT_TIME: Final = MetricSpec(
    "raildebug.inference.queue.wait_time",
    "histogram",
    SECONDS,
    "Time from arrival to getting a slot.",
    _GEN_AI_TTFT_BUCKETS,
)
METRIC_INFERENCE_SLOTS_BUSY: Final = MetricSpec(
    "raildebug.inference.slots.busy", "up_down_counter", SLOTS, "Slots generating now."
)
METRIC_INFERENCE_TOKENS: Final = MetricSpec(
    "raildebug.inference.tokens",
    "counter",
    TOKENS,
    "Prompt (gen_ai.token.type=input) and generated (output) tokens.",
)
METRIC_INFERENCE_PROMPT_CACHE_TOKENS: Final = MetricSpec(
    "raildebug.inference.prompt_cache.tokens",
    "counter",
    TOKENS,
    "Prompt tokens served from a reused KV prefix instead of being evaluated.",
)
METRIC_INFERENCE_DRAFT_TOKENS: Final = MetricSpec(
    "raildebug.inference.draft.tokens",
    "counter",
    TOKENS,
    "Prompt-lookup draft tokens verified (raildebug.draft.outcome=accepted: the sampler "
    "confirmed them; rejected: their cells were freed).",
)
METRIC_INFERENCE_REJECTED: Final = MetricSpec(
    "raildebug.inference.rejected",
    "counter",
    REQUESTS,
    "Requests refused with RESOURCE_EXHAUSTED because slots and queue were full.",
)

# orchestrator: a Debug request end to end, and the GenAI client of inference
METRIC_DEBUG_ANSWERS: Final = MetricSpec(
    "raildebug.debug.answers", "counter", ANSWERS, "Answers by prompt variant and outcome."
)
METRIC_DEBUG_TIME_TO_FIRST_TOKEN: Final = MetricSpec(
    "raildebug.debug.time_to_first_token",
    "histogram",
    SECONDS,
    "Debug call start to the first answer text.",
    _GEN_AI_TTFT_BUCKETS,
)
METRIC_DEBUG_DURATION: Final = MetricSpec(
    "raildebug.debug.duration",
    "histogram",
    SECONDS,
    "Debug call start to the final event.",
    _GEN_AI_DURATION_BUCKETS,
)
METRIC_GEN_AI_CLIENT_TOKEN_USAGE: Final = MetricSpec(
    "gen_ai.client.token.usage",
    "histogram",
    TOKENS,
    "Input and output tokens per generated answer, by model.",
    _GEN_AI_TOKEN_BUCKETS,
)
METRIC_CACHE_LOOKUPS: Final = MetricSpec(
    "raildebug.cache.lookups", "counter", LOOKUPS, "Response cache lookups by hit or miss."
)

# retriever
METRIC_RETRIEVAL_SEARCH_DURATION: Final = MetricSpec(
    "raildebug.retrieval.search.duration",
    "histogram",
    SECONDS,
    "Search time by mode (keyword, vector, hybrid) and fusion method.",
    _SEARCH_BUCKETS,
)
METRIC_RETRIEVAL_LEG_DURATION: Final = MetricSpec(
    "raildebug.retrieval.leg.duration",
    "histogram",
    SECONDS,
    "Time of one search leg: keyword (BM25) or vector (query embedding included).",
    _SEARCH_BUCKETS,
)
METRIC_RETRIEVAL_SEARCH_PASSAGES: Final = MetricSpec(
    "raildebug.retrieval.search.passages",
    "histogram",
    PASSAGES,
    "Passages returned per search.",
    _PASSAGE_BUCKETS,
)
METRIC_RETRIEVAL_INGEST_DURATION: Final = MetricSpec(
    "raildebug.retrieval.ingest.duration",
    "histogram",
    SECONDS,
    "Time of one ingest (chunking, embedding and writing).",
    _INGEST_BUCKETS,
)
METRIC_RETRIEVAL_INGEST_DOCUMENTS: Final = MetricSpec(
    "raildebug.retrieval.ingest.documents",
    "counter",
    DOCUMENTS,
    "Documents ingested by outcome (written, unchanged, duplicate, failed).",
)
METRIC_RETRIEVAL_INGEST_CHUNKS: Final = MetricSpec(
    "raildebug.retrieval.ingest.chunks", "counter", CHUNKS, "Chunks written to the store."
)
METRIC_RETRIEVAL_STORE_CHUNKS: Final = MetricSpec(
    "raildebug.retrieval.store.chunks",
    "gauge",
    CHUNKS,
    "Chunks in the store (updated by every search, ingest and delete).",
)

# Every metric above.
METRICS: Final[tuple[MetricSpec, ...]] = tuple(
    value for key, value in dict(globals()).items() if key.startswith("METRIC_")
)
