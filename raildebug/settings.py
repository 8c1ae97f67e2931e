"""Every setting, as pydantic-settings models: the one source of truth for configuration.

Each model has its own RAILDEBUG_<GROUP>_ prefix (RAILDEBUG_INFERENCE_PORT,
RAILDEBUG_OPENAI_BASE_URL, ...). A model reads its values when it is instantiated, never at
import: init arguments (the flags `raildebug serve` generates from these fields) win over
environment variables, which win over files in RAILDEBUG_SECRETS_DIR, which win over defaults.
`raildebug config` shows the effective values and where each came from; the table under
"Configure" in README.md is generated from these models (raildebug/settings_report.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

ORCHESTRATOR_PORT = 50051
RETRIEVER_PORT = 50052
INFERENCE_PORT = 50053

# Transport defaults shared by the servers (ServerSettings) and every client channel
# (raildebug.grpc_runtime.channels): plain constants, so importing them reads no environment.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
KEEPALIVE_TIME_S = 30.0
KEEPALIVE_TIMEOUT_S = 10.0

SECRETS_DIR_VARIABLE = "RAILDEBUG_SECRETS_DIR"


def shown_default(text: str) -> dict[str, Any]:
    """`json_schema_extra` of a field whose default is computed: how docs and --help show it."""
    return {"shown_default": text}


class RailDebugSettings(BaseSettings):
    """Base of every settings model: requires a RAILDEBUG_ prefix and reads secret files.

    A file in $RAILDEBUG_SECRETS_DIR named like a variable (e.g. RAILDEBUG_OPENAI_API_KEY, as a
    mounted Kubernetes or Docker secret) supplies that setting when the variable is unset.
    """

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        prefix = settings_cls.model_config.get("env_prefix") or ""
        if not prefix.startswith("RAILDEBUG_"):
            raise TypeError(
                f"{settings_cls.__name__} has no RAILDEBUG_ environment prefix and would read "
                "unprefixed variables such as PORT; instantiate a service's settings "
                "(InferenceSettings, RetrieverSettings, OrchestratorSettings) instead"
            )
        secrets_dir = secrets_directory()
        if secrets_dir is None:
            return init_settings, env_settings
        return init_settings, env_settings, SecretsSettingsSource(settings_cls, secrets_dir)


def secrets_directory() -> Path | None:
    """$RAILDEBUG_SECRETS_DIR if it names a directory (read when a model is instantiated)."""
    value = os.environ.get(SECRETS_DIR_VARIABLE, "")
    return Path(value) if value and Path(value).is_dir() else None


class CommonSettings(RailDebugSettings):
    """Settings every RailDebug process shares."""

    model_config = SettingsConfigDict(env_prefix="RAILDEBUG_")

    data_dir: Path = Field(
        default_factory=lambda: Path.home() / ".local/share/raildebug",
        description="Stores, model cache, prompt registry, feedback DB and `up` logs.",
        json_schema_extra=shown_default("~/.local/share/raildebug"),
    )
    secrets_dir: Path | None = Field(
        None,
        description="Directory of secret files, each named like the variable it sets "
        "(e.g. RAILDEBUG_OPENAI_API_KEY); an environment variable wins over its file.",
    )


class LogSettings(RailDebugSettings):
    """Logging of every process (raildebug.observability.logging)."""

    model_config = SettingsConfigDict(env_prefix="RAILDEBUG_LOG_")

    level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    format: Literal["json", "console"] = Field(
        "json", description="json: one JSON object per line; console: for humans."
    )


def default_data_dir() -> Path:
    """Where stores, model caches and logs go unless RAILDEBUG_DATA_DIR says otherwise."""
    return CommonSettings().data_dir


class OpenAISettings(RailDebugSettings):
    """One OpenAI-compatible endpoint: inference's `openai` backend and the orchestrator's
    `openai` analyzer both use it (raildebug/openai_endpoint.py)."""

    model_config = SettingsConfigDict(env_prefix="RAILDEBUG_OPENAI_")

    base_url: str = Field(
        "",
        description="API root of an OpenAI-compatible endpoint, e.g. http://vllm:8000/v1; "
        "empty: api.openai.com.",
    )
    api_key: SecretStr | None = Field(
        None, description="Key sent to that endpoint; unset sends a placeholder."
    )
    model: str = Field("", description="Model name sent; empty: the endpoint's first model.")
    timeout_s: float = Field(
        120.0, gt=0, description="HTTP timeout of one request; a shorter deadline wins."
    )


class ServerSettings(RailDebugSettings):
    """Transport settings every gRPC server shares.

    A base only: it has no environment prefix, so instantiating it raises TypeError; use the
    settings of a service.
    """

    host: str = Field("127.0.0.1", description="Interface to bind; 0.0.0.0 in containers.")
    port: int = Field(0, description="TCP port; each service has its own default.")
    max_workers: int = Field(32, description="Threads serving RPCs (streams hold one each).")
    max_concurrent_rpcs: int = Field(
        64, description="RPCs in flight before new ones get RESOURCE_EXHAUSTED."
    )
    max_message_bytes: int = Field(MAX_MESSAGE_BYTES, description="Max send/receive message size.")
    keepalive_time_s: float = Field(
        KEEPALIVE_TIME_S, description="Ping an idle connection this often."
    )
    keepalive_timeout_s: float = Field(
        KEEPALIVE_TIMEOUT_S, description="Drop a connection whose ping is unanswered."
    )
    min_client_ping_interval_s: float = Field(
        10.0, description="Reject clients pinging more often than this."
    )
    drain_grace_s: float = Field(20.0, description="On SIGTERM, time given to in-flight RPCs.")
    metrics_port: int = Field(
        0, ge=0, description="Prometheus scrape port (/metrics); 0 disables the endpoint."
    )
    auth_tokens: SecretStr | None = Field(
        None,
        description="Accepted bearer tokens, entries separated by ';', each 'CLIENT TOKEN "
        "[METHOD_PREFIX ...]' (prefixes limit what the token may call). Unset, and no "
        "auth_tokens_file: no authentication.",
    )
    auth_tokens_file: Path | None = Field(
        None, description="Mounted secret with the same entries, one per line ('#' comments)."
    )
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate chain; with tls_key_file the port serves TLS only."
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA bundle; clients must present a certificate it signed (mTLS)."
    )
    rate_limit_per_s: float = Field(
        0.0, ge=0, description="Sustained calls per second per client; 0 disables the limit."
    )
    rate_limit_burst: int = Field(
        20, ge=1, description="Calls a client may make back to back before the rate applies."
    )
    rate_limit_redis_url: str = Field(
        "", description="redis://host:port/db shared by replicas; empty keeps buckets in memory."
    )
    rate_limit_key: Literal["peer", "client_id"] = Field(
        "peer",
        description="What the limit counts calls without an authenticated client by: peer (the "
        "caller's IP address) or client_id (the request's client_id or x-client-id metadata, "
        "which the caller chooses; only behind a proxy that sets it).",
    )
    auth_failure_burst: int = Field(
        10,
        ge=1,
        description="Failed authentications a peer address may make before it is throttled; "
        "a throttled peer gets RESOURCE_EXHAUSTED without its token being checked.",
    )
    auth_failure_per_s: float = Field(
        0.2,
        ge=0,
        description="Failed authentications per second a throttled peer regains; 0 turns the "
        "throttle off.",
    )
    health_port: int = Field(
        0,
        ge=0,
        description="Also serve grpc.health.v1 (only) in plaintext on this port, for probes "
        "that cannot speak TLS; 0: health only on the main port.",
    )
    max_connection_age_s: float = Field(
        300.0,
        ge=0,
        description="Close client connections after this long (GOAWAY, +-10% jitter) so clients "
        "re-resolve DNS and spread over new replicas; 0: never.",
    )
    max_connection_age_grace_s: float = Field(
        180.0,
        ge=0,
        description="Time in-flight RPCs keep on a connection being closed for its age.",
    )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class ClientSettings(RailDebugSettings):
    """How `raildebug` commands reach a server that requires a token or TLS."""

    model_config = SettingsConfigDict(env_prefix="RAILDEBUG_CLIENT_")

    token: SecretStr | None = Field(None, description="Bearer token sent with every call.")
    ca_file: Path | None = Field(None, description="PEM CA of the server certificate; enables TLS.")
    cert_file: Path | None = Field(None, description="Client certificate for mutual TLS.")
    key_file: Path | None = Field(None, description="Private key of cert_file.")


class InferenceSettings(ServerSettings):
    """`raildebug serve inference`."""

    model_config = SettingsConfigDict(env_prefix="RAILDEBUG_INFERENCE_")

    port: int = Field(INFERENCE_PORT, description="TCP port of the inference service.")
    model: str = Field(
        "qwen2.5-coder-0.5b-instruct-q4_0",
        min_length=1,
        description="Catalog model to serve, by name (`raildebug models list`: built-in ones "
        "and registered fine-tunes); ignored when model_path is set.",
    )
    model_path: Path | None = Field(
        None, description="GGUF file to serve; wins over model. Unset: serve model by name."
    )
    model_cache_dir: Path = Field(
        default_factory=lambda: default_data_dir() / "models",
        description="Where catalog models are assembled (`raildebug models fetch`) and "
        "registered ones recorded (catalog.json).",
        json_schema_extra=shown_default("$RAILDEBUG_DATA_DIR/models"),
    )
    lora_path: Path | None = Field(
        None,
        description="GGUF LoRA adapter applied on top of the model at load time "
        "(e.g. a fine-tune's export/adapter-lora.gguf over the packaged Q4_K_M base).",
    )
    lora_scale: float = Field(1.0, ge=0, description="Strength of the LoRA adapter.")
    backend: Literal["gguf", "openai"] = Field(
        "gguf",
        description="gguf: batch the GGUF in this process; openai: forward to the "
        "RAILDEBUG_OPENAI_ endpoint.",
    )
    n_ctx: int = Field(
        8192, ge=256, description="KV cache cells shared by all slots (one request's maximum)."
    )
    n_threads: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="CPU threads for decoding.",
        json_schema_extra=shown_default("CPU count"),
    )
    n_batch: int = Field(512, ge=1, description="Tokens evaluated per llama_decode step.")
    n_gpu_layers: int = Field(0, ge=-1, description="Layers offloaded to the GPU; -1 means all.")
    slots: int = Field(4, ge=1, le=256, description="Requests generating at the same time.")
    max_queue: int = Field(16, ge=0, description="Requests allowed to wait for a slot.")
    default_max_tokens: int = Field(
        256, ge=1, description="max_tokens of a request that sets none."
    )
    draft_max: int = Field(
        3,
        ge=0,
        le=64,
        description="Prompt-lookup speculation: most tokens drafted per sequence and step from "
        "its own prompt and output, verified in the same decode; 0 turns it off.",
    )
    draft_ngram_max: int = Field(
        5, ge=3, le=8, description="Longest tail n-gram looked up to draft from (shortest: 3)."
    )
    draft_step_tokens: int = Field(
        4,
        ge=1,
        description="Drafts stop once a step decodes this many tokens (one per running "
        "sequence plus drafts): past it a step costs more than drafts save (raise on GPUs).",
    )
    prefill_chunk: int = Field(
        128,
        ge=0,
        description="Most prompt tokens a step evaluates while other sequences are decoding, "
        "bounding their inter-token latency; 0: up to n_batch.",
    )
    openai: OpenAISettings = Field(
        default_factory=OpenAISettings, description="Endpoint of backend=openai."
    )


class RetrieverSettings(ServerSettings):
    """`raildebug serve retriever`."""

    model_config = SettingsConfigDict(env_prefix="RAILDEBUG_RETRIEVER_")

    port: int = Field(RETRIEVER_PORT, description="TCP port of the retriever service.")
    store_backend: Literal["lancedb", "weaviate"] = Field(
        "lancedb",
        description="Where chunks live: lancedb, embedded in store_dir; weaviate, a Weaviate "
        "server at weaviate_url (replicas can share it).",
    )
    store_dir: Path = Field(
        default_factory=lambda: default_data_dir() / "store",
        description="LanceDB directory of the embedded store (store_backend=lancedb).",
        json_schema_extra=shown_default("$RAILDEBUG_DATA_DIR/store"),
    )
    max_per_source: int = Field(
        3, ge=0, le=100, description="Passages per source when a search sets none; 0: no cap."
    )
    store_check_interval_s: float = Field(
        5.0,
        gt=0,
        description="How often a loaded retriever checks its store answers (Weaviate); health "
        "reports NOT_SERVING while it does not, SERVING again once it does.",
    )
    weaviate_url: str = Field(
        "http://127.0.0.1:8080",
        description="REST address of the Weaviate server (store_backend=weaviate), no path; "
        "https also makes its gRPC connection use TLS.",
    )
    weaviate_grpc_port: int = Field(50051, ge=1, le=65535, description="gRPC port of that server.")
    weaviate_grpc_host: str = Field(
        "",
        description="Host of its gRPC endpoint when not the URL's (Weaviate's Helm chart serves "
        "gRPC as a separate Service, weaviate-grpc); empty: the URL's host.",
    )
    weaviate_api_key: SecretStr | None = Field(
        None,
        description="API key sent to Weaviate (one of its AUTHENTICATION_APIKEY_ALLOWED_KEYS); "
        "unset: anonymous access.",
    )
    weaviate_collection: str = Field(
        "RailDebugChunks",
        pattern=r"^[A-Z][_0-9A-Za-z]*$",
        description="Collection holding the chunks; its bookkeeping (sources, interrupted "
        "writes) lives in the same name + State (RailDebugChunksState).",
    )
    weaviate_hybrid: Literal["fusion", "native"] = Field(
        "fusion",
        description="fusion: our fusion of Weaviate's BM25 and near-vector results, with the "
        "exact-identifier pins; native: Weaviate's own hybrid query, fused server-side by the "
        "request's method (relativeScoreFusion or rankedFusion).",
    )
    weaviate_timeout_s: float = Field(
        30.0, gt=0, description="Timeout of one Weaviate request (imports get four times it)."
    )
    weaviate_startup_wait_s: float = Field(
        60.0,
        ge=0,
        description="How long startup keeps retrying an unreachable Weaviate before the store "
        "is reported failed.",
    )


class OrchestratorSettings(ServerSettings):
    """`raildebug serve orchestrator`."""

    model_config = SettingsConfigDict(env_prefix="RAILDEBUG_ORCHESTRATOR_")

    port: int = Field(ORCHESTRATOR_PORT, description="TCP port of the orchestrator service.")
    retriever_address: str = Field(
        f"127.0.0.1:{RETRIEVER_PORT}",
        description="host:port of the retriever service, or a gRPC target such as "
        "dns:///retriever-headless:50052 (calls round-robin over every address it resolves to).",
    )
    inference_address: str = Field(
        f"127.0.0.1:{INFERENCE_PORT}",
        description="host:port of the inference service, or a gRPC target such as "
        "dns:///inference-headless:50053 (calls round-robin over every address it resolves to).",
    )
    upstream_token: SecretStr | None = Field(
        None, description="Bearer token sent to the retriever and inference services."
    )
    upstream_ca_file: Path | None = Field(
        None, description="PEM CA that signed the upstreams' certificates; set to use TLS."
    )
    upstream_cert_file: Path | None = Field(
        None, description="Client certificate for upstreams that require mutual TLS."
    )
    upstream_key_file: Path | None = Field(None, description="Private key of upstream_cert_file.")
    analyzer: Literal["inference", "openai", "dspy"] = Field(
        "inference",
        description="Answer backend: our inference service (whatever it runs), an "
        "OpenAI-compatible API, or a compiled DSPy program. `gguf` is a deprecated alias of "
        "`inference`.",
    )

    @field_validator("analyzer", mode="before")
    @classmethod
    def _analyzer_alias(cls, value: object) -> object:
        if value == "gguf":
            import warnings

            warnings.warn(
                "analyzer 'gguf' is deprecated: use 'inference' (our inference service)",
                DeprecationWarning,
                stacklevel=2,
            )
            return "inference"
        return value

    openai: OpenAISettings = Field(
        default_factory=OpenAISettings, description="Endpoint of analyzer=openai."
    )
    dspy_program: str = Field(
        "", description="Name of the compiled DSPy program version to serve (analyzer=dspy)."
    )
    prompt_name: str = Field("rail_fix", description="Prompt served, by registry name.")
    prompt_label: str = Field(
        "production", description="Label whose version is served (production, staging, ...)."
    )
    prompt_registry_dir: Path = Field(
        default_factory=lambda: default_data_dir() / "prompts",
        description="Local prompt registry (versions, labels, audit log); seeded from "
        "services/orchestrator/prompts on first use.",
        json_schema_extra=shown_default("$RAILDEBUG_DATA_DIR/prompts"),
    )
    experiment_label: str = Field(
        "", description="Second label A/B-tested against prompt_label; empty: no experiment."
    )
    experiment_share: float = Field(
        0.5, ge=0, le=1, description="Share of sessions/clients served experiment_label."
    )
    langfuse_host: str = Field(
        "", description="Langfuse URL to fetch prompts from; empty uses the local registry only."
    )
    langfuse_public_key: str = Field("", description="Langfuse project public key.")
    langfuse_secret_key: SecretStr | None = Field(None, description="Langfuse secret key.")
    langfuse_timeout_s: int = Field(
        2, ge=1, description="Timeout of one Langfuse prompt fetch; then the local one is used."
    )
    langfuse_cache_ttl_s: int = Field(
        60, ge=0, description="How long a fetched Langfuse prompt is served before a refresh."
    )
    langfuse_traces: bool = Field(
        False,
        description="Also send the orchestrator's traces to Langfuse (OTLP/HTTP, basic auth with "
        "the keys above), besides the OTEL_EXPORTER_OTLP_* collector (Jaeger, ...) if any.",
    )
    langfuse_otlp_endpoint: str = Field(
        "",
        description="Langfuse's OTLP traces URL; empty: langfuse_host + "
        "/api/public/otel/v1/traces.",
    )
    cache_backend: Literal["none", "memory", "redis"] = Field(
        "none", description="Response cache for repeated questions."
    )
    cache_ttl_s: float = Field(600.0, gt=0, description="How long a cached answer is served.")
    cache_max_entries: int = Field(1024, ge=1, description="In-memory cache size bound.")
    cache_redis_url: str = Field("", description="redis://host:port/db for cache_backend=redis.")
    price_table: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="USD per million (prompt, completion) tokens by model name, as JSON, for the "
        "estimated cost on traces; models not listed get no estimate.",
    )
    search_alpha: float = Field(
        0.5, ge=0, le=1, description="Vector-leg weight of retrieval (0 keyword only, 1 vector)."
    )
    default_deadline_s: float = Field(120.0, description="Used when the caller sets no deadline.")
    retrieval_share: float = Field(
        0.2, gt=0, lt=1, description="Share of the deadline the retrieval step may use."
    )
    max_retrieval_s: float = Field(5.0, gt=0, description="Upper bound of the retrieval timeout.")
    feedback_db: Path = Field(
        default_factory=lambda: default_data_dir() / "feedback.sqlite3",
        description="SQLite file recording answered requests and their feedback.",
        json_schema_extra=shown_default("$RAILDEBUG_DATA_DIR/feedback.sqlite3"),
    )


class DspySettings(RailDebugSettings):
    """Where compiled DSPy rail-fix programs live (`raildebug dspy`, the `dspy` analyzer)."""

    model_config = SettingsConfigDict(env_prefix="RAILDEBUG_DSPY_")

    programs_dir: Path = Field(
        default_factory=lambda: default_data_dir() / "dspy-programs",
        description="Compiled programs, <name>@<version>.json; the programs shipped in the "
        "package are also read.",
        json_schema_extra=shown_default("$RAILDEBUG_DATA_DIR/dspy-programs"),
    )


# The models of `raildebug serve SERVICE` (its flags) and `raildebug config SERVICE`.
SERVICE_SETTINGS: dict[str, type[ServerSettings]] = {
    "retriever": RetrieverSettings,
    "inference": InferenceSettings,
    "orchestrator": OrchestratorSettings,
}

# Every model with its own variables, in the order README's Configure table lists them.
DOCUMENTED_SETTINGS: tuple[type[RailDebugSettings], ...] = (
    CommonSettings,
    LogSettings,
    InferenceSettings,
    RetrieverSettings,
    OrchestratorSettings,
    OpenAISettings,
    DspySettings,
    ClientSettings,
)
