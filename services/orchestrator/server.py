"""gRPC transport of the orchestrator service (thin: conversions and lifecycle only)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from opentelemetry.trace import TracerProvider

from raildebug.grpc_runtime.context import absolute_deadline, cancellation_flag
from raildebug.grpc_runtime.security import ChannelSecurity
from raildebug.grpc_runtime.server import RailDebugServer
from raildebug.settings import OrchestratorSettings
from raildebug.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from services.orchestrator.analyzers.selection import build_analyzer
from services.orchestrator.clients.inference import InferenceClient
from services.orchestrator.clients.retriever import RetrieverClient
from services.orchestrator.costs import PriceTable
from services.orchestrator.experiments import PromptExperiment
from services.orchestrator.feedback import FeedbackLog
from services.orchestrator.pipeline import DebugPipeline, PipelineParts
from services.orchestrator.prompt_registry import PromptRegistry
from services.orchestrator.prompt_sources import (
    LangfusePromptSource,
    LocalPromptSource,
    PromptSource,
)
from services.orchestrator.response_cache import (
    MemoryResponseCache,
    RedisResponseCache,
    ResponseCache,
)
from services.orchestrator.stages.retrieval import DeadlinePolicy
from services.orchestrator.wire import event_to_wire, feedback_from_wire, question_from_wire

SERVICE_NAME = orchestrator_pb2.DESCRIPTOR.services_by_name["Orchestrator"].full_name


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServicer):
    def __init__(
        self, pipeline: DebugPipeline, feedback: FeedbackLog, default_deadline_s: float
    ) -> None:
        self._pipeline = pipeline
        self._feedback = feedback
        self._default_deadline_s = default_deadline_s

    def Debug(
        self, request: orchestrator_pb2.DebugRequest, context: grpc.ServicerContext
    ) -> Iterator[orchestrator_pb2.DebugEvent]:
        deadline = absolute_deadline(context, default_s=self._default_deadline_s)
        assert deadline is not None  # a default is always given
        events = self._pipeline.run(
            question_from_wire(request), deadline, is_cancelled=cancellation_flag(context)
        )
        for event in events:
            yield event_to_wire(event)

    def Feedback(
        self, request: orchestrator_pb2.FeedbackRequest, context: grpc.ServicerContext
    ) -> orchestrator_pb2.FeedbackResponse:
        self._feedback.record_feedback(feedback_from_wire(request))
        return orchestrator_pb2.FeedbackResponse(recorded=True)


def build_server(
    settings: OrchestratorSettings, tracer_provider: TracerProvider | None = None
) -> RailDebugServer:
    server = RailDebugServer(settings, [SERVICE_NAME], tracer_provider)
    upstream = upstream_security(settings)
    feedback = FeedbackLog(settings.feedback_db, tracer_provider)
    analyzer = build_analyzer(
        settings, lambda: InferenceClient(settings.inference_address, upstream, tracer_provider)
    )
    parts = PipelineParts(
        passages=RetrieverClient(
            settings.retriever_address, settings.search_alpha, upstream, tracer_provider
        ),
        analyzer=analyzer,
        prompts=prompt_source(settings),
        prompt_name=settings.prompt_name,
        experiment=prompt_experiment(settings),
        deadlines=DeadlinePolicy(settings.retrieval_share, settings.max_retrieval_s),
        search_alpha=settings.search_alpha,
        cache=response_cache(settings),
        prices=PriceTable(settings.price_table),
        on_answered=feedback.record_answer,
    )
    pipeline = DebugPipeline.standard(parts, tracer_provider)
    orchestrator_pb2_grpc.add_OrchestratorServicer_to_server(
        OrchestratorServicer(pipeline, feedback, settings.default_deadline_s), server.grpc_server
    )
    return server


def prompt_experiment(settings: OrchestratorSettings) -> PromptExperiment:
    """Named after its arms, so changing an arm reshuffles callers instead of half-keeping them."""
    return PromptExperiment(
        settings.prompt_label,
        settings.experiment_label,
        settings.experiment_share,
        name=f"{settings.prompt_name}:{settings.prompt_label}:{settings.experiment_label}",
    )


def upstream_security(settings: OrchestratorSettings) -> ChannelSecurity:
    return ChannelSecurity(
        token=settings.upstream_token.get_secret_value() if settings.upstream_token else None,
        ca_file=settings.upstream_ca_file,
        cert_file=settings.upstream_cert_file,
        key_file=settings.upstream_key_file,
    )


def prompt_source(settings: OrchestratorSettings) -> PromptSource:
    local = LocalPromptSource(PromptRegistry(settings.prompt_registry_dir))
    # Fail at startup, not on the first request, when the served labels do not exist.
    for label in filter(None, (settings.prompt_label, settings.experiment_label)):
        local.resolve(settings.prompt_name, label)
    if not settings.langfuse_host:
        return local
    return LangfusePromptSource.connect(
        settings.langfuse_host,
        settings.langfuse_public_key,
        settings.langfuse_secret_key.get_secret_value() if settings.langfuse_secret_key else "",
        local,
        settings.langfuse_timeout_s,
        settings.langfuse_cache_ttl_s,
    )


def response_cache(settings: OrchestratorSettings) -> ResponseCache | None:
    if settings.cache_backend == "memory":
        return MemoryResponseCache(settings.cache_ttl_s, settings.cache_max_entries)
    if settings.cache_backend == "redis":
        if not settings.cache_redis_url:
            raise ValueError("cache_backend=redis needs RAILDEBUG_ORCHESTRATOR_CACHE_REDIS_URL")
        return RedisResponseCache(settings.cache_redis_url, settings.cache_ttl_s)
    return None
