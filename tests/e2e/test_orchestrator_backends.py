"""The orchestrator with the `openai` analyzer against a real OpenAI-compatible server
(llama_cpp.server with the packaged Gemma), a real retriever, the response cache, an A/B test
between two registry labels, and Langfuse configured but unreachable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from apps.cli.main import main
from raildebug.grpc_runtime.channels import open_channel
from raildebug.grpc_runtime.server import RailDebugServer
from raildebug.settings import OpenAISettings, OrchestratorSettings
from raildebug.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from services.orchestrator.assembly import prompt_experiment
from services.orchestrator.prompt_registry import PromptRegistry
from services.orchestrator.server import build_server
from tests.support.servers import free_port, retriever_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def openai_server(openai_compatible_server: str) -> str:
    return openai_compatible_server


@pytest.fixture(scope="module")
def settings(openai_server: str, tmp_path_factory: pytest.TempPathFactory) -> OrchestratorSettings:
    data = tmp_path_factory.mktemp("backends")
    registry = PromptRegistry(data / "prompts")
    body = registry.body("rail_fix", 1).replace("Cause:'''", "Likely cause:'''")
    registry.create("rail_fix", body, author="tests", message="sharper opening")
    registry.set_label("rail_fix", "staging", 2, actor="tests", reason="A/B against production")
    return OrchestratorSettings(
        port=free_port(),
        analyzer="openai",
        openai=OpenAISettings(base_url=openai_server, model="gemma-3-270m"),
        feedback_db=data / "feedback.sqlite3",
        prompt_registry_dir=data / "prompts",
        experiment_label="staging",
        experiment_share=0.5,
        cache_backend="memory",
        langfuse_host=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        langfuse_public_key="pk-lf-test",
        langfuse_secret_key=SecretStr("sk-lf-test"),
        langfuse_timeout_s=1,
    )


@pytest.fixture(scope="module")
def stub(
    settings: OrchestratorSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[orchestrator_pb2_grpc.OrchestratorStub]:
    with retriever_server(tmp_path_factory.mktemp("store")) as retriever:
        configured = settings.model_copy(
            update={"retriever_address": f"127.0.0.1:{retriever.port}"}
        )
        server: RailDebugServer = build_server(configured)
        server.start()
        with open_channel(f"127.0.0.1:{server.port}") as channel:
            yield orchestrator_pb2_grpc.OrchestratorStub(channel)
        server.stop(grace_s=0)


def _session_on(settings: OrchestratorSettings, label: str) -> str:
    experiment = prompt_experiment(settings)
    return next(f"s-{n}" for n in range(100) if experiment.assign(f"s-{n}") == label)


def _debug(
    stub: orchestrator_pb2_grpc.OrchestratorStub, question: str, session: str
) -> tuple[list[orchestrator_pb2.ContextPassage], list[str], orchestrator_pb2.DebugSummary]:
    events = list(
        stub.Debug(
            orchestrator_pb2.DebugRequest(
                question=question, max_tokens=12, k=2, session_id=session
            ),
            timeout=120,
        )
    )
    deltas = [e.delta for e in events if e.WhichOneof("event") == "delta"]
    return list(events[0].context.passages), deltas, events[-1].summary


def test_openai_backend_streams_and_a_repeat_is_served_from_the_cache(
    stub: orchestrator_pb2_grpc.OrchestratorStub, settings: OrchestratorSettings
) -> None:
    session = _session_on(settings, "production")
    passages, deltas, summary = _debug(stub, "Why is E73-B raised on point P12?", session)
    assert len(deltas) >= 2 and "".join(deltas).strip()
    assert summary.model == "gemma-3-270m"
    assert summary.prompt_version == "rail_fix@3" and summary.prompt_variant == "production"
    assert not summary.cache_hit and not summary.degraded
    assert passages, "the real retriever grounded the answer"

    again_passages, again_deltas, again = _debug(
        stub, "  why is e73-b raised on POINT p12? ", session
    )
    assert again.cache_hit
    assert again_deltas == deltas, "a cache hit streams the same deltas"
    assert [p.id for p in again_passages] == [p.id for p in passages]
    assert again.request_id != summary.request_id
    assert again.usage.completion_tokens == summary.usage.completion_tokens


def test_ab_variants_are_recorded_on_answers_and_feedback_and_exported(
    stub: orchestrator_pb2_grpc.OrchestratorStub,
    settings: OrchestratorSettings,
    tmp_path: Path,
) -> None:
    recorded = {}
    answers = {}
    for label in ("production", "staging"):
        _, deltas, summary = _debug(
            stub, "Track circuit T4 shows occupied", _session_on(settings, label)
        )
        assert summary.prompt_variant == label
        recorded[label] = summary
        answers[label] = "".join(deltas)
        stub.Feedback(
            orchestrator_pb2.FeedbackRequest(
                request_id=summary.request_id,
                score=1.0 if label == "staging" else -0.5,
                comment=f"{label} answer",
            ),
            timeout=10,
        )
    assert recorded["staging"].prompt_version == "rail_fix@2"  # Langfuse down: local registry

    out = tmp_path / "feedback.jsonl"
    assert main(["feedback", "export", "--db", str(settings.feedback_db), "--out", str(out)]) == 0
    rows = {row["request_id"]: row for row in map(json.loads, out.read_text().splitlines())}
    staging = rows[recorded["staging"].request_id]
    assert staging["prompt_variant"] == "staging" and staging["prompt_version"] == "rail_fix@2"
    assert staging["model"] == "gemma-3-270m" and staging["score"] == 1.0
    assert staging["question"] == "Track circuit T4 shows occupied"
    assert staging["context"] and all(p["text"] for p in staging["context"])
    assert staging["answer"] == answers["staging"]
    assert rows[recorded["production"].request_id]["prompt_variant"] == "production"

    well_rated = tmp_path / "well_rated.jsonl"
    args = ["feedback", "export", "--db", str(settings.feedback_db), "--out", str(well_rated)]
    assert main([*args, "--min-score", "0.5"]) == 0
    exported = [json.loads(line)["request_id"] for line in well_rated.read_text().splitlines()]
    assert recorded["staging"].request_id in exported
    assert recorded["production"].request_id not in exported
