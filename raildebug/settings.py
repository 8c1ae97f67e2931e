"""All settings, read from flags or RAILDEBUG_* environment variables (pydantic-settings).

Each service has its own settings class with its own prefix, e.g. RAILDEBUG_INFERENCE_PORT,
RAILDEBUG_RETRIEVER_STORE_DIR, RAILDEBUG_ORCHESTRATOR_RETRIEVER_ADDRESS.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ORCHESTRATOR_PORT = 50051
RETRIEVER_PORT = 50052
INFERENCE_PORT = 50053


def default_data_dir() -> Path:
    """Where stores, model caches and logs go unless RAILDEBUG_DATA_DIR says otherwise."""
    return Path(os.environ.get("RAILDEBUG_DATA_DIR", Path.home() / ".local/share/raildebug"))


class ServerSettings(BaseSettings):
    """Transport settings every gRPC server shares."""

    host: str = Field("127.0.0.1", description="Interface to bind; 0.0.0.0 in containers.")
    port: int = Field(0, description="TCP port; each service has its own default.")
    max_workers: int = Field(32, description="Threads serving RPCs (streams hold one each).")
    max_concurrent_rpcs: int = Field(
        64, description="RPCs in flight before new ones get RESOURCE_EXHAUSTED."
    )
    max_message_bytes: int = Field(16 * 1024 * 1024, description="Max send/receive message size.")
    keepalive_time_s: float = Field(30.0, description="Ping an idle connection this often.")
    keepalive_timeout_s: float = Field(
        10.0, description="Drop a connection whose ping is unanswered."
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

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class ClientSettings(BaseSettings):
    """How `raildebug` commands reach a server that requires a token or TLS."""

    model_config = SettingsConfigDict(env_prefix="RAILDEBUG_CLIENT_")

    token: SecretStr | None = Field(None, description="Bearer token sent with every call.")
    ca_file: Path | None = Field(None, description="PEM CA of the server certificate; enables TLS.")
    cert_file: Path | None = Field(None, description="Client certificate for mutual TLS.")
    key_file: Path | None = Field(None, description="Private key of cert_file.")


class InferenceSettings(ServerSettings):
    model_config = SettingsConfigDict(env_prefix="RAILDEBUG_INFERENCE_")

    port: int = INFERENCE_PORT
    model_path: Path | None = Field(
        None, description="GGUF file to serve; unset serves the packaged Gemma 3 270M Q4_K_M."
    )
    model_cache_dir: Path = Field(
        default_factory=lambda: default_data_dir() / "models",
        description="Where the packaged GGUF is assembled on first use.",
    )
    lora_path: Path | None = Field(
        None,
        description="GGUF LoRA adapter applied on top of the model at load time "
        "(e.g. a fine-tune's export/adapter-lora.gguf over the packaged Q4_K_M base).",
    )
    lora_scale: float = Field(1.0, ge=0, description="Strength of the LoRA adapter.")
    backend: Literal["gguf", "openai"] = Field(
        "gguf",
        description="gguf: batch the GGUF in this process; openai: forward to openai_base_url.",
    )
    n_ctx: int = Field(
        8192, ge=256, description="KV cache cells shared by all slots (one request's maximum)."
    )
    n_threads: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, description="CPU threads for decoding."
    )
    n_batch: int = Field(512, ge=1, description="Tokens evaluated per llama_decode step.")
    n_gpu_layers: int = Field(0, ge=-1, description="Layers offloaded to the GPU; -1 means all.")
    slots: int = Field(4, ge=1, le=256, description="Requests generating at the same time.")
    max_queue: int = Field(16, ge=0, description="Requests allowed to wait for a slot.")
    default_max_tokens: int = Field(256, ge=1)
    openai_base_url: str = Field(
        "", description="OpenAI-compatible endpoint of the openai backend, e.g. http://h:8000/v1."
    )
    openai_api_key: SecretStr = Field(SecretStr("unused"), description="Key sent to that endpoint.")
    openai_model: str = Field("", description="Model name sent to that endpoint.")
    openai_timeout_s: float = Field(120.0, gt=0, description="Per-request HTTP timeout.")


class RetrieverSettings(ServerSettings):
    model_config = SettingsConfigDict(env_prefix="RAILDEBUG_RETRIEVER_")

    port: int = RETRIEVER_PORT
    store_dir: Path = Field(
        default_factory=lambda: default_data_dir() / "store",
        description="LanceDB directory of the embedded store.",
    )
    max_per_source: int = Field(
        3, ge=0, le=100, description="Passages per source when a search sets none; 0: no cap."
    )


class OrchestratorSettings(ServerSettings):
    model_config = SettingsConfigDict(env_prefix="RAILDEBUG_ORCHESTRATOR_")

    port: int = ORCHESTRATOR_PORT
    retriever_address: str = Field(f"127.0.0.1:{RETRIEVER_PORT}")
    inference_address: str = Field(f"127.0.0.1:{INFERENCE_PORT}")
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
    analyzer: Literal["gguf", "openai", "dspy"] = Field(
        "gguf",
        description="Answer backend: our inference service, an OpenAI-compatible API, or a "
        "compiled DSPy program.",
    )
    openai_base_url: str = Field(
        "", description="OpenAI-compatible API root (e.g. http://host:8000/v1); empty: OpenAI."
    )
    openai_api_key: SecretStr | None = Field(None, description="API key of openai_base_url.")
    openai_model: str = Field("gpt-4o-mini", description="Model name sent to the OpenAI API.")
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
    )


class DspySettings(BaseSettings):
    """Where compiled DSPy rail-fix programs live (`raildebug dspy`, the `dspy` analyzer)."""

    model_config = SettingsConfigDict(env_prefix="RAILDEBUG_DSPY_")

    programs_dir: Path = Field(
        default_factory=lambda: default_data_dir() / "dspy-programs",
        description="Compiled programs, <name>@<version>.json; data/dspy/programs is also read.",
    )
