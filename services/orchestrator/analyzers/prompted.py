"""The default analyzer: send the rendered prompt to our inference service."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from raildebug.domain import GenerationOutcome
from services.orchestrator.clients.inference import Generation, InferenceClient
from services.orchestrator.models import AnalysisInput


class PromptedAnalyzer:
    """Streams the versioned prompt through the Inference service: a completion template's
    text as is, a chat template's turns for the model's own chat template."""

    name = "inference"

    def __init__(self, inference: InferenceClient) -> None:
        self._inference = inference

    def model(self, timeout_s: float) -> str:
        return self._inference.model_name(timeout_s)

    def analyze(
        self,
        work: AnalysisInput,
        *,
        timeout_s: float,
        request_id: str,
        is_cancelled: Callable[[], bool],
    ) -> Iterator[str | GenerationOutcome]:
        generation = Generation(
            prompt="" if work.chat else work.prompt,
            chat=work.chat,
            grammar=work.grammar,
            max_tokens=work.max_tokens,
            stop=work.stop,
            request_id=request_id,
        )
        return self._inference.generate(generation, timeout_s=timeout_s, is_cancelled=is_cancelled)
