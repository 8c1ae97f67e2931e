"""How the orchestrator is put together from its settings: upstream clients, the analyzer,
prompts, the A/B experiment, the response cache, the feedback log and the Debug pipeline.

Nothing here speaks gRPC: server.py wraps the assembled pipeline in the transport, and tests or
tools can assemble the same orchestrator without serving it.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.trace import TracerProvider

from raildebug.settings import OrchestratorSettings
from services.orchestrator.analyzers.selection import build_analyzer
from services.orchestrator.clients.inference import InferenceClient
from services.orchestrator.clients.upstreams import connect_inference, connect_retriever
from services.orchestrator.context_budget import LengthEstimate
from services.orchestrator.costs import PriceTable
from services.orchestrator.experiments import PromptExperiment
from services.orchestrator.feedback import FeedbackLog
from services.orchestrator.langfuse_traces import export_traces_to_langfuse
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


@dataclass(frozen=True)
class Orchestrator:
    """What the transport serves: the Debug pipeline and the feedback log."""

    pipeline: DebugPipeline
    feedback: FeedbackLog


def assemble(
    settings: OrchestratorSettings, tracer_provider: TracerProvider | None = None
) -> Orchestrator:
    """Everything fails here, at startup, when a configured part cannot be used."""
    export_traces_to_langfuse(settings, tracer_provider)  # when langfuse_traces is set
    feedback = FeedbackLog(settings.feedback_db, tracer_provider)
    opened: list[InferenceClient] = []

    def inference() -> InferenceClient:
        if not opened:
            opened.append(connect_inference(settings, tracer_provider))
        return opened[0]

    analyzer = build_analyzer(settings, inference)
    parts = PipelineParts(
        passages=connect_retriever(settings, tracer_provider),
        analyzer=analyzer,
        # the inference service counts in the served model's tokens; an OpenAI endpoint cannot
        tokens=opened[0] if opened else LengthEstimate(),
        prompts=prompt_source(settings),
        prompt_name=settings.prompt_name,
        experiment=prompt_experiment(settings),
        deadlines=DeadlinePolicy(settings.retrieval_share, settings.max_retrieval_s),
        search_alpha=settings.search_alpha,
        cache=response_cache(settings),
        prices=PriceTable(settings.price_table),
        on_answered=feedback.record_answer,
    )
    return Orchestrator(DebugPipeline.standard(parts, tracer_provider), feedback)


def prompt_experiment(settings: OrchestratorSettings) -> PromptExperiment:
    """Named after its arms, so changing an arm reshuffles callers instead of half-keeping them."""
    return PromptExperiment(
        settings.prompt_label,
        settings.experiment_label,
        settings.experiment_share,
        name=f"{settings.prompt_name}:{settings.prompt_label}:{settings.experiment_label}",
    )


def prompt_source(settings: OrchestratorSettings) -> PromptSource:
    local = LocalPromptSource(PromptRegistry(settings.prompt_registry_dir))
    source: PromptSource = local
    if settings.langfuse_host:
        source = LangfusePromptSource.connect(
            settings.langfuse_host,
            settings.langfuse_public_key,
            settings.langfuse_secret_key.get_secret_value() if settings.langfuse_secret_key else "",
            local,
            settings.langfuse_timeout_s,
            settings.langfuse_cache_ttl_s,
        )
    # Fail at startup, not on the first request, when a served label (or pinned @version)
    # exists neither in Langfuse nor in the local registry.
    for label in filter(None, (settings.prompt_label, settings.experiment_label)):
        source.resolve(settings.prompt_name, label)
    return source


def response_cache(settings: OrchestratorSettings) -> ResponseCache | None:
    if settings.cache_backend == "memory":
        return MemoryResponseCache(settings.cache_ttl_s, settings.cache_max_entries)
    if settings.cache_backend == "redis":
        if not settings.cache_redis_url:
            raise ValueError("cache_backend=redis needs RAILDEBUG_ORCHESTRATOR_CACHE_REDIS_URL")
        return RedisResponseCache(settings.cache_redis_url, settings.cache_ttl_s)
    return None
