"""Analyzer backends are chosen by configuration; an unusable choice stops startup with a reason."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import SecretStr

from raildebug.domain import GenerationOutcome
from raildebug.settings import OrchestratorSettings
from services.orchestrator.analyzers.compiled_dspy import (
    PROGRAM_MODULE,
    AnalyzerUnavailable,
    CompiledDspyAnalyzer,
)
from services.orchestrator.analyzers.openai_chat import OpenAIChatAnalyzer
from services.orchestrator.analyzers.prompted import PromptedAnalyzer
from services.orchestrator.analyzers.selection import build_analyzer
from services.orchestrator.clients.inference import InferenceClient
from services.orchestrator.models import AnalysisInput, DebugQuestion
from services.orchestrator.server import build_server


def _settings(tmp_path: Path, **fields: Any) -> OrchestratorSettings:
    return OrchestratorSettings(
        port=0, feedback_db=tmp_path / "f.sqlite3", prompt_registry_dir=tmp_path, **fields
    )


def _inference() -> InferenceClient:
    return InferenceClient("127.0.0.1:9")


def test_gguf_is_the_default_and_openai_needs_a_key_or_a_base_url(tmp_path: Path) -> None:
    assert isinstance(build_analyzer(_settings(tmp_path), _inference), PromptedAnalyzer)
    with pytest.raises(AnalyzerUnavailable, match="OPENAI_API_KEY"):
        build_analyzer(_settings(tmp_path, analyzer="openai"), _inference)
    chosen = build_analyzer(
        _settings(tmp_path, analyzer="openai", openai_api_key=SecretStr("k"), openai_model="x"),
        _inference,
    )
    assert isinstance(chosen, OpenAIChatAnalyzer) and chosen.model(1.0) == "x"


def test_dspy_without_its_program_module_fails_at_startup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, PROGRAM_MODULE, None)  # as if the module did not exist
    settings = _settings(tmp_path, analyzer="dspy", dspy_program="rail_fix_v1")
    with pytest.raises(AnalyzerUnavailable, match=r"dspy_program is missing.*ANALYZER=gguf"):
        build_server(settings)
    with pytest.raises(AnalyzerUnavailable, match="DSPY_PROGRAM"):
        build_server(_settings(tmp_path, analyzer="dspy"))


class _Program:
    """Stands in for a compiled program, which is built in its own issue."""

    model = "Gemma 3 270m"

    def stream(
        self, work: AnalysisInput, *, timeout_s: float, is_cancelled: Callable[[], bool]
    ) -> Iterator[str | GenerationOutcome]:
        yield f"fix for: {work.question.question}"
        yield GenerationOutcome("stop", 1, 2, 0, 0, 0, 0, 0, 0, self.model)


def test_dspy_loads_the_named_program_through_the_seam(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded: list[str] = []

    def load_program(name: str, settings: OrchestratorSettings) -> _Program:
        loaded.append(name)
        return _Program()

    module = ModuleType(PROGRAM_MODULE)
    module.load_program = load_program  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, PROGRAM_MODULE, module)
    analyzer = build_analyzer(
        _settings(tmp_path, analyzer="dspy", dspy_program="rail_fix_v3"), _inference
    )
    assert isinstance(analyzer, CompiledDspyAnalyzer) and loaded == ["rail_fix_v3"]
    assert analyzer.model(1.0) == "Gemma 3 270m (dspy:rail_fix_v3)"
    work = AnalysisInput(DebugQuestion(question="E73-B"), [], "", (), 10)
    items = list(analyzer.analyze(work, timeout_s=1, request_id="r", is_cancelled=lambda: False))
    assert items[0] == "fix for: E73-B" and isinstance(items[1], GenerationOutcome)


def test_unknown_prompt_labels_fail_at_startup(tmp_path: Path) -> None:
    from raildebug.errors import NotFound

    with pytest.raises(NotFound, match="no label 'canary'"):
        build_server(_settings(tmp_path, experiment_label="canary"))
