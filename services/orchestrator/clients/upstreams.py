"""The orchestrator's upstream clients, opened from its settings with one TLS/token rule."""

from __future__ import annotations

from opentelemetry.trace import TracerProvider

from raildebug.grpc_runtime.security import ChannelSecurity
from raildebug.settings import OrchestratorSettings
from services.orchestrator.clients.inference import InferenceClient
from services.orchestrator.clients.retriever import RetrieverClient


def upstream_security(settings: OrchestratorSettings) -> ChannelSecurity:
    """Token and TLS files the orchestrator presents to the retriever and inference services."""
    return ChannelSecurity(
        token=settings.upstream_token.get_secret_value() if settings.upstream_token else None,
        ca_file=settings.upstream_ca_file,
        cert_file=settings.upstream_cert_file,
        key_file=settings.upstream_key_file,
    )


def connect_inference(
    settings: OrchestratorSettings, tracer_provider: TracerProvider | None = None
) -> InferenceClient:
    return InferenceClient(settings.inference_address, upstream_security(settings), tracer_provider)


def connect_retriever(
    settings: OrchestratorSettings, tracer_provider: TracerProvider | None = None
) -> RetrieverClient:
    return RetrieverClient(
        settings.retriever_address,
        settings.search_alpha,
        upstream_security(settings),
        tracer_provider,
    )
