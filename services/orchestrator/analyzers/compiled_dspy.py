"""Analyzer backend that serves a compiled DSPy program by name.

The program itself (signature, module, compilation, storage) lives in
services/orchestrator/analyzers/dspy_program.py, which exposes
`load_program(name, settings) -> CompiledProgram` (see ports.CompiledProgram).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator

from raildebug.domain import GenerationOutcome
from raildebug.settings import OrchestratorSettings
from services.orchestrator.models import AnalysisInput
from services.orchestrator.ports import CompiledProgram

PROGRAM_MODULE = "services.orchestrator.analyzers.dspy.serving"


class AnalyzerUnavailable(RuntimeError):
    """The configured analyzer backend cannot be used; raised at startup."""


class CompiledDspyAnalyzer:
    name = "dspy"

    def __init__(self, program: CompiledProgram, program_name: str) -> None:
        self._program = program
        self.program_name = program_name

    @classmethod
    def load(cls, settings: OrchestratorSettings) -> CompiledDspyAnalyzer:
        if not settings.dspy_program:
            raise AnalyzerUnavailable(
                "analyzer 'dspy' needs a program: set RAILDEBUG_ORCHESTRATOR_DSPY_PROGRAM to the "
                "name of a compiled version (`raildebug dspy list`)"
            )
        try:
            module = importlib.import_module(PROGRAM_MODULE)
        except ModuleNotFoundError as error:
            if error.name != PROGRAM_MODULE:
                raise
            raise AnalyzerUnavailable(
                f"analyzer 'dspy' is not available in this build: {PROGRAM_MODULE} is missing. "
                "Use RAILDEBUG_ORCHESTRATOR_ANALYZER=gguf or openai"
            ) from None
        load_program: Callable[[str, OrchestratorSettings], CompiledProgram] = module.load_program
        return cls(load_program(settings.dspy_program, settings), settings.dspy_program)

    def model(self, timeout_s: float) -> str:
        return f"{self._program.model} (dspy:{self.program_name})"

    def analyze(
        self,
        work: AnalysisInput,
        *,
        timeout_s: float,
        request_id: str,
        is_cancelled: Callable[[], bool],
    ) -> Iterator[str | GenerationOutcome]:
        return self._program.stream(work, timeout_s=timeout_s, is_cancelled=is_cancelled)
