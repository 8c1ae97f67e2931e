"""What the transport needs from a generation backend (gguf engine or an OpenAI endpoint)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from services.inference.models import GenerationEvent, GenerationRequest, ModelInfo, TokenCounts


class GenerationBackend(Protocol):
    def info(self) -> ModelInfo: ...

    def token_counts(self, texts: Sequence[str]) -> TokenCounts:
        """Tokens of each text as this backend's model reads them (callers pack budgets)."""
        ...

    def generate(
        self,
        request: GenerationRequest,
        is_cancelled: Callable[[], bool] = ...,
        deadline: float | None = None,
    ) -> Iterator[GenerationEvent]: ...
