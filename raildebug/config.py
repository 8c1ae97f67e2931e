"""All settings, read from flags or RAILDEBUG_* environment variables (pydantic-settings).

Each service has its own settings class with its own prefix, e.g. RAILDEBUG_INFERENCE_PORT,
RAILDEBUG_RETRIEVER_STORE_DIR, RAILDEBUG_ORCHESTRATOR_RETRIEVER_ADDRESS.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
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

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


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
    n_ctx: int = Field(4096, ge=256, description="Context length to load the model with.")
    n_threads: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, description="CPU threads for decoding."
    )
    n_batch: int = Field(512, ge=1, description="Prompt tokens evaluated per llama_decode call.")
    n_gpu_layers: int = Field(0, ge=-1, description="Layers offloaded to the GPU; -1 means all.")
    max_queue: int = Field(16, ge=0, description="Requests allowed to wait for the model.")
    default_max_tokens: int = Field(256, ge=1)


class RetrieverSettings(ServerSettings):
    model_config = SettingsConfigDict(env_prefix="RAILDEBUG_RETRIEVER_")

    port: int = RETRIEVER_PORT
    store_dir: Path = Field(
        default_factory=lambda: default_data_dir() / "store",
        description="LanceDB directory of the embedded store.",
    )


class OrchestratorSettings(ServerSettings):
    model_config = SettingsConfigDict(env_prefix="RAILDEBUG_ORCHESTRATOR_")

    port: int = ORCHESTRATOR_PORT
    retriever_address: str = Field(f"127.0.0.1:{RETRIEVER_PORT}")
    inference_address: str = Field(f"127.0.0.1:{INFERENCE_PORT}")
    prompt_template: str = Field(
        "rail_fix@1", description="Prompt template id@version from services/orchestrator/prompts."
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
