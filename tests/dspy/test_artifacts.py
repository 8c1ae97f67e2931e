"""Compiled programs as versioned JSON: numbering, never overwriting, lookup, clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dspy
import pytest

from raildebug.errors import InvalidRequest, NotFound
from services.orchestrator.analyzers.dspy.artifacts import SHIPPED_PROGRAMS_DIR, ProgramStore
from services.orchestrator.analyzers.dspy.program import RailFixRAG


def manifest(name: str = "rail_fix") -> dict[str, Any]:
    return {
        "name": name,
        "program": "RailFixRAG",
        "model": "Gemma 3 270m (Q4_K_M)",
        "data_version": "sft-test:train1:dev1:seed0:ctx=dataset",
        "metric_version": "rail_fix_metric@1",
        "optimizer": {"name": "BootstrapFewShot", "demos": 1},
        "scores": {"uncompiled": 0.1, "compiled": 0.4},
        "cost": {"lm_calls": 3, "prompt_tokens": 10, "completion_tokens": 5, "minutes": 0.1},
    }


def program_with_demo(fix: str) -> RailFixRAG:
    program = RailFixRAG()
    program.generate.demos = [dspy.Example(context="[1] a", query="why?", fix=fix)]
    return program


def test_versions_grow_per_name_and_files_are_json(tmp_path: Path) -> None:
    store = ProgramStore(tmp_path, shipped_dir=None)
    first = store.save(manifest(), program_with_demo("one"))
    second = store.save(manifest(), program_with_demo("two"))
    other = store.save(manifest("rail_fix_small"), program_with_demo("x"))
    assert (first.manifest.ref, second.manifest.ref, other.manifest.ref) == (
        "rail_fix@1",
        "rail_fix@2",
        "rail_fix_small@1",
    )
    document = json.loads(second.path.read_text())
    assert document["manifest"]["metric_version"] == "rail_fix_metric@1"
    assert document["state"]["generate"]["demos"][0]["fix"] == "two"
    assert [m.ref for m in store.list()] == ["rail_fix@1", "rail_fix@2", "rail_fix_small@1"]


def test_get_latest_or_exact_version_and_load_state(tmp_path: Path) -> None:
    store = ProgramStore(tmp_path, shipped_dir=None)
    store.save(manifest(), program_with_demo("one"))
    store.save(manifest(), program_with_demo("two"))
    assert store.get("rail_fix").manifest.version == 2
    exact = store.get("rail_fix@1")
    loaded = RailFixRAG()
    loaded.load_state(exact.state)
    assert loaded.generate.demos[0]["fix"] == "one"


def test_a_released_version_is_never_overwritten(tmp_path: Path) -> None:
    store = ProgramStore(tmp_path, shipped_dir=None)
    saved = store.save(manifest(), program_with_demo("one"))
    with pytest.raises(FileExistsError), saved.path.open("x"):
        pass
    assert store.save(manifest(), program_with_demo("two")).manifest.version == 2


def test_unknown_program_names_what_exists(tmp_path: Path) -> None:
    store = ProgramStore(tmp_path, shipped_dir=None)
    store.save(manifest(), program_with_demo("one"))
    with pytest.raises(NotFound, match=r"rail_fix@7.*rail_fix@1.*raildebug dspy compile"):
        store.get("rail_fix@7")


def test_bad_names_and_foreign_files_are_rejected(tmp_path: Path) -> None:
    store = ProgramStore(tmp_path, shipped_dir=None)
    with pytest.raises(InvalidRequest, match="lower-case"):
        store.save(manifest("Rail Fix"), program_with_demo("x"))
    (tmp_path / "rail_fix@1.json").write_text('{"format": "pickle"}')
    with pytest.raises(InvalidRequest, match="not a compiled RailDebug DSPy program"):
        store.list()


def test_shipped_programs_are_found_after_the_writable_dir(tmp_path: Path) -> None:
    shipped = ProgramStore(tmp_path, shipped_dir=SHIPPED_PROGRAMS_DIR).list()
    assert shipped, "the package ships at least one compiled program beside artifacts.py"
    for m in shipped:
        assert m.metric_version.startswith("rail_fix_metric@")
        assert "Gemma" in m.model
