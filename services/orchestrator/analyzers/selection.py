"""Picks the analyzer backend named by configuration; an unusable choice fails at startup."""

from __future__ import annotations

from collections.abc import Callable

from raildebug.settings import OrchestratorSettings
from services.orchestrator.analyzers.openai_chat import OpenAIChatAnalyzer
from services.orchestrator.analyzers.prompted import PromptedAnalyzer
from services.orchestrator.clients.inference import InferenceClient
from services.orchestrator.ports import Analyzer

# Imported only when chosen: DSPy is a large import the other backends do not need.
DSPY_MODULE = "services.orchestrator.analyzers.dspy.serving"


class AnalyzerUnavailable(RuntimeError):
    """The configured analyzer backend cannot be used; raised at startup."""


def build_analyzer(
    settings: OrchestratorSettings, inference: Callable[[], InferenceClient]
) -> Analyzer:
    """`inference` opens the client of our inference service, for the backends that use it
    (`inference` and `dspy`)."""
    if settings.analyzer == "inference":
        return PromptedAnalyzer(inference())
    if settings.analyzer == "openai":
        endpoint = settings.openai
        if not endpoint.base_url and (endpoint.api_key is None or not endpoint.model):
            raise AnalyzerUnavailable(
                "analyzer 'openai' needs RAILDEBUG_OPENAI_API_KEY and RAILDEBUG_OPENAI_MODEL "
                "for api.openai.com, or RAILDEBUG_OPENAI_BASE_URL for a self-hosted server"
            )
        return OpenAIChatAnalyzer.connect(endpoint)
    if settings.analyzer == "dspy":
        return _dspy_analyzer(settings, inference)
    raise AnalyzerUnavailable(
        f"unknown analyzer {settings.analyzer!r}: use inference, openai or dspy"
    )


def _dspy_analyzer(
    settings: OrchestratorSettings, inference: Callable[[], InferenceClient]
) -> Analyzer:
    if not settings.dspy_program:
        raise AnalyzerUnavailable(
            "analyzer 'dspy' needs a program: set RAILDEBUG_ORCHESTRATOR_DSPY_PROGRAM to the "
            "name of a compiled version (`raildebug dspy list`)"
        )
    try:
        from services.orchestrator.analyzers.dspy.serving import DspyAnalyzer
    except ModuleNotFoundError as error:
        if error.name not in (DSPY_MODULE, "dspy"):
            raise
        raise AnalyzerUnavailable(
            f"analyzer 'dspy' is not available in this build: {error.name} is missing. "
            "Use RAILDEBUG_ORCHESTRATOR_ANALYZER=inference or openai"
        ) from None
    return DspyAnalyzer.load(settings, inference())
