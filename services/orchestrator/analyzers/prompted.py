"""The default analyzer: send the rendered prompt to a text generator (our inference service)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from services.orchestrator.models import AnalysisInput, GenerationStats
from services.orchestrator.ports import AnswerGenerator


class PromptedAnalyzer:
    name = "gguf"

    def __init__(self, generator: AnswerGenerator) -> None:
        self._generator = generator

    def model(self, timeout_s: float) -> str:
        return self._generator.model_name(timeout_s)

    def analyze(
        self,
        work: AnalysisInput,
        *,
        timeout_s: float,
        request_id: str,
        is_cancelled: Callable[[], bool],
    ) -> Iterator[str | GenerationStats]:
        return self._generator.generate(
            work.prompt,
            max_tokens=work.max_tokens,
            stop=work.stop,
            timeout_s=timeout_s,
            request_id=request_id,
            is_cancelled=is_cancelled,
        )
