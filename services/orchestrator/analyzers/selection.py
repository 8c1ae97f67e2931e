"""Picks the analyzer backend named by configuration; an unusable choice fails at startup."""

from __future__ import annotations

from collections.abc import Callable

from raildebug.settings import OrchestratorSettings
from services.orchestrator.analyzers.compiled_dspy import AnalyzerUnavailable, CompiledDspyAnalyzer
from services.orchestrator.analyzers.openai_chat import OpenAIChatAnalyzer
from services.orchestrator.analyzers.prompted import PromptedAnalyzer
from services.orchestrator.ports import Analyzer, AnswerGenerator


def build_analyzer(
    settings: OrchestratorSettings, inference: Callable[[], AnswerGenerator]
) -> Analyzer:
    """`inference` opens the client of our inference service, for the backends that use it."""
    if settings.analyzer == "gguf":
        return PromptedAnalyzer(inference())
    if settings.analyzer == "openai":
        if settings.openai_api_key is None and not settings.openai_base_url:
            raise AnalyzerUnavailable(
                "analyzer 'openai' needs RAILDEBUG_ORCHESTRATOR_OPENAI_API_KEY, or "
                "RAILDEBUG_ORCHESTRATOR_OPENAI_BASE_URL for a self-hosted compatible server"
            )
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "none"
        return OpenAIChatAnalyzer.connect(settings.openai_base_url, key, settings.openai_model)
    if settings.analyzer == "dspy":
        return CompiledDspyAnalyzer.load(settings)
    raise AnalyzerUnavailable(f"unknown analyzer {settings.analyzer!r}: use gguf, openai or dspy")
