"""What the transport needs from a generation backend (gguf engine or an OpenAI endpoint)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from services.inference.models import GenerationEvent, GenerationRequest, ModelInfo


class GenerationBackend(Protocol):
    def info(self) -> ModelInfo: ...

    def generate(
        self,
        request: GenerationRequest,
        is_cancelled: Callable[[], bool] = ...,
        deadline: float | None = None,
    ) -> Iterator[GenerationEvent]: ...
