"""What the orchestrator core needs from the outside world, as interfaces.

The pipeline sees passages through `PassageSource` (the Retriever service's client in
clients/retriever.py, or an in-process core in tests and tools) and answers through `Analyzer`
(the backends in analyzers/). Failures are domain errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from raildebug.domain import GenerationOutcome, PassageFilter
from services.orchestrator.models import AnalysisInput, ContextPassage


class PassageSource(Protocol):
    def search(
        self, query: str, k: int, passage_filter: PassageFilter, timeout_s: float
    ) -> list[ContextPassage]: ...


class TokenCounter(Protocol):
    """Counts tokens as the answering model reads them, so passages fit a token budget."""

    def count(self, texts: Sequence[str], timeout_s: float) -> list[int]: ...


class Analyzer(Protocol):
    """Turns a question and its retrieved passages into a streamed answer.

    Backends (our inference service, an OpenAI-compatible API, a compiled DSPy program) are
    selected by configuration (analyzers/selection.py); the pipeline only sees this interface.
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
