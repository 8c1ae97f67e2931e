"""Analyzer backends are chosen by configuration; an unusable choice stops startup with a reason."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from raildebug.settings import OpenAISettings, OrchestratorSettings
from services.orchestrator.analyzers.openai_chat import OpenAIChatAnalyzer
from services.orchestrator.analyzers.prompted import PromptedAnalyzer
from services.orchestrator.analyzers.selection import (
    DSPY_MODULE,
    AnalyzerUnavailable,
    build_analyzer,
)
from services.orchestrator.clients.inference import InferenceClient
from services.orchestrator.server import build_server


def _settings(tmp_path: Path, **fields: Any) -> OrchestratorSettings:
    return OrchestratorSettings(
        port=0, feedback_db=tmp_path / "f.sqlite3", prompt_registry_dir=tmp_path, **fields
    )


def _inference() -> InferenceClient:
    return InferenceClient("127.0.0.1:9")


def test_inference_is_the_default_and_openai_needs_a_key_or_a_base_url(tmp_path: Path) -> None:
    default = build_analyzer(_settings(tmp_path), _inference)
    assert isinstance(default, PromptedAnalyzer) and default.name == "inference"
    with pytest.raises(AnalyzerUnavailable, match="OPENAI_API_KEY"):
        build_analyzer(_settings(tmp_path, analyzer="openai", openai=OpenAISettings()), _inference)
    endpoint = OpenAISettings(api_key=SecretStr("k"), model="x")
    chosen = build_analyzer(_settings(tmp_path, analyzer="openai", openai=endpoint), _inference)
    assert isinstance(chosen, OpenAIChatAnalyzer) and chosen.model(1.0) == "x"


def test_gguf_is_a_deprecated_name_of_inference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.warns(DeprecationWarning, match="use 'inference'"):
        assert _settings(tmp_path, analyzer="gguf").analyzer == "inference"
    monkeypatch.setenv("RAILDEBUG_ORCHESTRATOR_ANALYZER", "gguf")
    with pytest.warns(DeprecationWarning):
        from_env = OrchestratorSettings()
    assert isinstance(build_analyzer(from_env, _inference), PromptedAnalyzer)
    with pytest.raises(ValueError, match="analyzer"):
        _settings(tmp_path, analyzer="llama")


def test_dspy_without_its_module_or_a_program_fails_at_startup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(AnalyzerUnavailable, match="DSPY_PROGRAM"):
        build_server(_settings(tmp_path, analyzer="dspy"))
    monkeypatch.setitem(sys.modules, DSPY_MODULE, None)  # as if the module did not exist
    settings = _settings(tmp_path, analyzer="dspy", dspy_program="rail_fix_v1")
    with pytest.raises(AnalyzerUnavailable, match=r"serving is missing.*ANALYZER=inference"):
        build_server(settings)


def test_dspy_loads_the_named_program_on_the_inference_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.orchestrator.analyzers.dspy.serving import DspyAnalyzer

    monkeypatch.setenv("RAILDEBUG_DSPY_PROGRAMS_DIR", str(tmp_path / "programs"))
    settings = _settings(tmp_path, analyzer="dspy", dspy_program="rail_fix@1")
    analyzer = build_analyzer(settings, _inference)  # rail_fix@1 ships in data/dspy/programs
    assert isinstance(analyzer, DspyAnalyzer) and analyzer.name == "dspy"
    assert analyzer.program_ref == "rail_fix@1"
    from raildebug.errors import NotFound

    with pytest.raises(NotFound, match="rail_fix@99"):
        build_analyzer(settings.model_copy(update={"dspy_program": "rail_fix@99"}), _inference)


def test_unknown_prompt_labels_fail_at_startup(tmp_path: Path) -> None:
    from raildebug.errors import NotFound

    with pytest.raises(NotFound, match="no label 'canary'"):
        build_server(_settings(tmp_path, experiment_label="canary"))
