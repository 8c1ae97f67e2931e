"""In-process stand-ins for the orchestrator's two upstreams (ports.PassageSource and
ports.Analyzer), for tests of the pipeline itself: what prompt it picks, what it traces.

They answer from a script, load no model and open no port, so the pipeline, its stages, the
prompt sources and the tracing around them run for real in the test process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from raildebug.domain import FinishReason, GenerationOutcome, PassageFilter
from services.orchestrator.models import AnalysisInput, ContextPassage

PASSAGE = ContextPassage(
    id="doc-1",
    text="E73-B: point P12 failed to lock within pm_lock_timeout_ms.",
    source="docs/errors-points.md",
    line_start=10,
    line_end=14,
    title="E73-B",
    kind="doc",
    score=0.9,
)


@dataclass
class ScriptedPassages:
    passages: list[ContextPassage] = field(default_factory=lambda: [PASSAGE])

    def search(
        self, query: str, k: int, passage_filter: PassageFilter, timeout_s: float
    ) -> list[ContextPassage]:
        return self.passages[:k]


@dataclass
class ScriptedAnalyzer:
    """Streams `deltas`, then an outcome with the given token counts; keeps every prompt."""

    deltas: tuple[str, ...] = ("Cause: the point ", "did not lock [1].")
    model_name: str = "scripted-model"
    prompt_tokens: int = 120
    completion_tokens: int = 8
    name: str = "scripted"
    prompts: list[str] = field(default_factory=list)

    def model(self, timeout_s: float) -> str:
        return self.model_name

    def analyze(
        self,
        work: AnalysisInput,
        *,
        timeout_s: float,
        request_id: str,
        is_cancelled: Callable[[], bool],
    ) -> Iterator[str | GenerationOutcome]:
        self.prompts.append(work.prompt)
        yield from self.deltas
        yield GenerationOutcome(
            finish_reason=FinishReason.STOP,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cached_prompt_tokens=0,
            queue_ms=0.0,
            time_to_first_token_ms=1.0,
            prefill_ms=1.0,
            decode_ms=1.0,
            total_ms=3.0,
            model=self.model_name,
        )
