"""What the orchestrator core needs from the outside world, as interfaces.

The gRPC clients of the retriever and inference services implement these (upstream.py);
tests and tools can plug in the in-process cores instead. Failures are domain errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from raildebug.domain import GenerationOutcome, PassageFilter
from services.orchestrator.models import AnalysisInput, ContextPassage


class PassageSource(Protocol):
    def search(
        self, query: str, k: int, passage_filter: PassageFilter, timeout_s: float
    ) -> list[ContextPassage]: ...


class AnswerGenerator(Protocol):
    def model_name(self, timeout_s: float) -> str: ...

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int,
        stop: tuple[str, ...],
        timeout_s: float,
        request_id: str,
        is_cancelled: Callable[[], bool],
    ) -> Iterator[str | GenerationOutcome]:
        """Yields text deltas, then exactly one GenerationOutcome."""
        ...


class Analyzer(Protocol):
    """Turns a question and its retrieved passages into a streamed answer.

    Backends (our inference service, an OpenAI-compatible API, a compiled DSPy program) are
    selected by configuration; the pipeline only sees this interface.
    """

    name: str

    def model(self, timeout_s: float) -> str:
        """Name of the model that answers (part of the response-cache key)."""
        ...

    def analyze(
        self,
        work: AnalysisInput,
        *,
        timeout_s: float,
        request_id: str,
        is_cancelled: Callable[[], bool],
    ) -> Iterator[str | GenerationOutcome]:
        """Yields text deltas, then exactly one GenerationOutcome."""
        ...


class CompiledProgram(Protocol):
    """A compiled DSPy rail-fix program, as services/orchestrator/analyzers/dspy_program.py
    loads it: `load_program(name: str, settings: OrchestratorSettings) -> CompiledProgram`."""

    model: str

    def stream(
        self, work: AnalysisInput, *, timeout_s: float, is_cancelled: Callable[[], bool]
    ) -> Iterator[str | GenerationOutcome]:
        """Yields the answer text as it is produced, then exactly one GenerationOutcome."""
        ...
