"""The Debug pipeline: the standard stage sequence and its entry point.

validate → select_prompt → [cache_lookup] → retrieval → prompt → analysis → [cache_store]
→ response, with cache_replay standing in for retrieval, prompt and analysis on a cache hit.
Retrieval failures degrade the answer (no context, `degraded=True`) instead of failing it;
analyzer failures before the first token raise NotReady (UNAVAILABLE to the caller).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from opentelemetry import trace

from raildebug.observability.tracing import get_tracer
from services.orchestrator.costs import PriceTable
from services.orchestrator.experiments import PromptExperiment
from services.orchestrator.models import AnsweredRequest, DebugEvent, DebugQuestion
from services.orchestrator.ports import Analyzer, PassageSource, TokenCounter
from services.orchestrator.prompt_sources import PromptSource
from services.orchestrator.response_cache import ResponseCache
from services.orchestrator.stage_sequence import DebugState, Stage, StageSequence
from services.orchestrator.stages.analysis import Analyze
from services.orchestrator.stages.cache import CacheLookup, ReplayCached, StoreInCache
from services.orchestrator.stages.intake import SelectPrompt, Validate
from services.orchestrator.stages.prompt import BuildPrompt
from services.orchestrator.stages.response import Respond
from services.orchestrator.stages.retrieval import DeadlinePolicy, Retrieve


@dataclass(frozen=True)
class PipelineParts:
    """What the standard stages are built from; assembly.py fills it from settings."""

    passages: PassageSource
    analyzer: Analyzer
    prompts: PromptSource
    prompt_name: str = "rail_fix"
    tokens: TokenCounter | None = None  # None: token budgets fall back to characters
    experiment: PromptExperiment = field(default_factory=lambda: PromptExperiment("production"))
    deadlines: DeadlinePolicy = field(default_factory=DeadlinePolicy)
    search_alpha: float = 0.5
    cache: ResponseCache | None = None
    prices: PriceTable = field(default_factory=lambda: PriceTable({}))
    on_answered: Callable[[AnsweredRequest], None] | None = None


def standard_stages(parts: PipelineParts) -> list[Stage]:
    stages: list[Stage] = [
        Validate(),
        SelectPrompt(parts.prompts, parts.prompt_name, parts.experiment),
    ]
    if parts.cache is not None:
        stages += [CacheLookup(parts.cache, parts.analyzer), ReplayCached()]
    stages += [
        Retrieve(parts.passages, parts.deadlines, parts.search_alpha),
        BuildPrompt(parts.tokens),
        Analyze(parts.analyzer),
    ]
    if parts.cache is not None:
        stages.append(StoreInCache(parts.cache))
    stages.append(Respond(parts.prices, parts.on_answered))
    return stages


class DebugPipeline:
    def __init__(self, stages: list[Stage], tracer_provider: trace.TracerProvider | None = None):
        self.sequence = StageSequence(stages, get_tracer(__name__, tracer_provider))

    @classmethod
    def standard(
        cls, parts: PipelineParts, tracer_provider: trace.TracerProvider | None = None
    ) -> DebugPipeline:
        return cls(standard_stages(parts), tracer_provider)

    def run(
        self,
        question: DebugQuestion,
        deadline: float,
        is_cancelled: Callable[[], bool] = lambda: False,
    ) -> Iterator[DebugEvent]:
        """Stream the context, the answer deltas, then one summary.

        `deadline` is absolute, on the time.monotonic() clock.
        """
        state = DebugState(question, uuid.uuid4().hex, deadline, is_cancelled)
        yield from self.sequence.run(state)
