"""The rail-fix program on the real Gemma model through our inference service."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dspy
import pytest

from raildebug.errors import InvalidRequest
from raildebug.grpc_runtime.channels import open_channel
from raildebug.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from services.orchestrator.analyzers.dspy.artifacts import ProgramStore
from services.orchestrator.analyzers.dspy.lm import InferenceEngine, rail_lm
from services.orchestrator.analyzers.dspy.program import RailFixRAG, rail_settings
from services.orchestrator.clients.inference import InferenceClient
from services.orchestrator.clients.retriever import RetrieverClient
from tests.support.paths import REPO_ROOT
from tests.support.processes import ServiceProcess, StartService

pytestmark = pytest.mark.e2e

QUERY = "E73-B on point P12: the lock is not confirmed within the timeout. Why?"
DEMO = dspy.Example(
    context="[1] docs/errors-points.md:99-158\nE73-B: lock not confirmed within "
    "`pm_lock_timeout_ms` after motor cut-off.",
    query="What does E73-B mean?",
    fix="The lock contact did not close within `pm_lock_timeout_ms` [1]. Set a per-object "
    "override: `pm_lock_timeout_ms@P12 = 2500`",
)


def saved_manifest(name: str) -> dict[str, object]:
    return {
        "name": name,
        "program": "RailFixRAG",
        "model": "Gemma 3 270m (Q4_K_M)",
        "data_version": "hand-made-demo",
        "metric_version": "rail_fix_metric@1",
        "optimizer": {"name": "none", "demos": 1},
        "scores": {"uncompiled": 0.0, "compiled": 0.0},
        "cost": {"lm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "minutes": 0.0},
    }


def test_save_load_round_trip_gives_identical_predictions(
    inference_service: ServiceProcess, retriever_service: ServiceProcess, tmp_path: Path
) -> None:
    engine = InferenceEngine(InferenceClient(inference_service.address))
    search = RetrieverClient(retriever_service.address)
    program = RailFixRAG(search=search)
    program.generate.demos = [DEMO]
    stored = ProgramStore(tmp_path, shipped_dir=None).save(saved_manifest("rail_fix"), program)
    loaded = RailFixRAG(search=search)
    loaded.load_state(ProgramStore(tmp_path, shipped_dir=None).get("rail_fix").state)
    assert stored.manifest.ref == "rail_fix@1"

    with rail_settings(rail_lm(engine, max_tokens=24, seed=7)):
        context = program.retrieve(QUERY)
        original = program(query=QUERY, context=context)
        reloaded = loaded(query=QUERY, context=context)
        retrieved = loaded(query=QUERY)  # retrieval through the retriever service

    assert "E73-B" in context
    assert original.fix == reloaded.fix == retrieved.fix
    assert engine.counters.calls == 3  # no DSPy cache: every prediction reached the model
    engine.close()
    search.close()


def test_inference_errors_surface_as_domain_errors(inference_service: ServiceProcess) -> None:
    engine = InferenceEngine(InferenceClient(inference_service.address))
    with rail_settings(rail_lm(engine, max_tokens=100_000)), pytest.raises(Exception) as raised:
        RailFixRAG()(query="why?", context="[1] nothing")
    cause: BaseException | None = raised.value
    while cause is not None and not isinstance(cause, InvalidRequest):
        cause = cause.__cause__
    assert isinstance(cause, InvalidRequest), raised.value
    assert "max_tokens" in str(cause)
    assert engine.counters.calls == 0
    engine.close()


def test_compile_command_writes_a_versioned_artifact(
    inference_service: ServiceProcess, tmp_path: Path
) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "name: rail_fix_tiny\ntrain_size: 1\ndev_size: 1\nmax_tokens: 24\n"
        "max_bootstrapped_demos: 1\nmax_labeled_demos: 1\n"
    )
    programs = tmp_path / "programs"
    command = [sys.executable, "-m", "apps.cli.main", "dspy", "--programs-dir", str(programs)]
    result = subprocess.run(
        [*command, "compile", "--config", str(config), "--inference", inference_service.address],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "uncompiled" in result.stdout and "rail_fix_tiny@1" in result.stdout
    stored = ProgramStore(programs, shipped_dir=None).get("rail_fix_tiny")
    m = stored.manifest
    assert (m.ref, m.metric_version, m.program) == (
        "rail_fix_tiny@1",
        "rail_fix_metric@1",
        "RailFixRAG",
    )
    assert m.model == "gemma-3-270m"  # the catalog name the inference fixture serves
    assert m.data_version.startswith("sft-") and m.data_version.endswith("ctx=dataset")
    assert m.cost["lm_calls"] >= 2  # dev before and after, plus bootstrapping
    assert 0.0 <= m.scores["uncompiled"] <= 1.0 and 0.0 <= m.scores["compiled"] <= 1.0
    assert len(stored.state["generate"]["demos"]) == 1

    listed = subprocess.run([*command, "list"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert "rail_fix_tiny@1" in listed.stdout
    shown = subprocess.run(
        [*command, "show", "rail_fix_tiny"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert '"data_version"' in shown.stdout and "--- demo 1 ---" in shown.stdout


def test_orchestrator_serves_a_compiled_program_and_streams_it(
    start_service: StartService,
    inference_service: ServiceProcess,
    retriever_service: ServiceProcess,
    tmp_path: Path,
) -> None:
    program = RailFixRAG()
    program.generate.demos = [DEMO]
    ProgramStore(tmp_path, shipped_dir=None).save(saved_manifest("rail_fix_served"), program)
    os.environ["RAILDEBUG_DSPY_PROGRAMS_DIR"] = str(tmp_path)  # inherited by the service
    try:
        orchestrator = start_service(
            "orchestrator",
            retriever_address=retriever_service.address,
            inference_address=inference_service.address,
            analyzer="dspy",
            dspy_program="rail_fix_served",
        )
    finally:
        del os.environ["RAILDEBUG_DSPY_PROGRAMS_DIR"]
    request = orchestrator_pb2.DebugRequest(question=QUERY, max_tokens=32)
    with open_channel(orchestrator.address) as channel:
        events = list(orchestrator_pb2_grpc.OrchestratorStub(channel).Debug(request, timeout=600))
    kinds = [event.WhichOneof("event") for event in events]
    deltas = [event.delta for event in events if event.WhichOneof("event") == "delta"]
    summary = events[-1].summary
    assert kinds[0] == "context" and kinds[-1] == "summary"
    assert deltas and "".join(deltas).strip(), kinds
    assert not "".join(deltas).lstrip().startswith('"')  # the JSON field's text, not its JSON
    assert "rail_fix_served@1" in summary.model
    assert 0 < summary.usage.completion_tokens <= 32
    inference_log = inference_service.log_path.read_text()
    assert '"request_id": "dspy-' in inference_log  # generated through our DSPy engine
