"""Langfuse as the prompt home, read through the official SDK from an in-process Langfuse
(tests/support/fake_langfuse.py): labels, pinned versions, the TTL, outages both ways, refused
prompts, A/B arms that are Langfuse labels, and the startup check."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raildebug.errors import NotFound
from raildebug.settings import OrchestratorSettings
from services.orchestrator.assembly import prompt_source
from services.orchestrator.experiments import PromptExperiment
from services.orchestrator.langfuse_prompts import as_langfuse
from services.orchestrator.models import DebugQuestion, DebugSummary
from services.orchestrator.pipeline import DebugPipeline, PipelineParts
from services.orchestrator.prompt_registry import PromptRegistry
from services.orchestrator.prompt_sources import LangfusePromptSource, LocalPromptSource
from services.orchestrator.prompting import PROMPTS_DIR
from tests.support.fake_langfuse import FakeLangfuse, fake_langfuse
from tests.support.prompts import shipped_subset
from tests.support.scripted_upstreams import ScriptedAnalyzer, ScriptedPassages

TTL_S = 60
RETRY_S = 30.0
SEED_TEXT, SEED_CONFIG = as_langfuse((PROMPTS_DIR / "rail_fix@1.toml").read_text(), "seed")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def langfuse() -> Iterator[FakeLangfuse]:
    """rail_fix in Langfuse: v1 = the shipped template (production), v2 (staging), v3 (exp-b)."""
    with fake_langfuse() as fake:
        fake.create_prompt(
            "rail_fix", SEED_TEXT, config=SEED_CONFIG, labels=["production"], commit_message="v1"
        )
        for version, label in ((2, "staging"), (3, "exp-b")):
            fake.create_prompt(
                "rail_fix",
                SEED_TEXT.replace("Cause:", f"Root cause (v{version}):"),
                config={**SEED_CONFIG, "max_context_chars": 4000 + version},
                labels=[label],
                commit_message=f"v{version}",
            )
        yield fake


@pytest.fixture
def registry(tmp_path: Path) -> PromptRegistry:
    # As seeded before rail_fix@2 shipped: rail_fix@1 at production, staging and dev.
    return PromptRegistry(
        tmp_path / "registry", seed_from=shipped_subset(tmp_path / "shipped", "rail_fix@1")
    )


def source_for(
    fake: FakeLangfuse, registry: PromptRegistry, clock: Clock | None = None
) -> LangfusePromptSource:
    return LangfusePromptSource.connect(
        fake.url,
        fake.public_key,
        fake.secret_key,
        LocalPromptSource(registry),
        timeout_s=2,
        cache_ttl_s=TTL_S,
        retry_after_s=RETRY_S,
        clock=clock or Clock(),
    )


def prompt_gets(fake: FakeLangfuse) -> list[dict[str, list[str]]]:
    return [r.query for r in fake.requests_to("GET", "/api/public/v2/prompts/rail_fix")]


def test_labels_custom_labels_and_pinned_versions_are_read_from_langfuse(
    langfuse: FakeLangfuse, registry: PromptRegistry
) -> None:
    source = source_for(langfuse, registry)
    production = source.resolve("rail_fix", "production")
    assert production.ref == "rail_fix@1" and production.source == SEED_TEXT
    assert production.stop == tuple(SEED_CONFIG["stop"])
    staging = source.resolve("rail_fix", "staging")
    assert staging.ref == "rail_fix@2" and "Root cause (v2):" in staging.source
    assert staging.max_context_chars == 4002
    assert source.resolve("rail_fix", "exp-b").ref == "rail_fix@3"  # a custom label
    pinned = source.resolve("rail_fix", "@2")
    assert pinned.ref == "rail_fix@2" and pinned.source == staging.source
    assert prompt_gets(langfuse) == [
        {"label": ["production"]},
        {"label": ["staging"]},
        {"label": ["exp-b"]},
        {"version": ["2"]},
    ]
    # Basic auth with the project's keys, as the SDK sends it.
    (request, *_) = langfuse.requests_to("GET", "/api/public/v2/prompts/rail_fix")
    assert request.headers["authorization"].startswith("Basic ")


def test_a_label_moved_in_langfuse_is_served_after_the_ttl(
    langfuse: FakeLangfuse, registry: PromptRegistry
) -> None:
    clock = Clock()
    source = source_for(langfuse, registry, clock)
    assert source.resolve("rail_fix", "staging").ref == "rail_fix@2"
    langfuse.set_labels("rail_fix", 3, ["staging"])  # someone moves staging in the Langfuse UI
    clock.now += TTL_S - 1
    assert source.resolve("rail_fix", "staging").ref == "rail_fix@2"  # still cached
    assert len(prompt_gets(langfuse)) == 1
    clock.now += 1
    assert source.resolve("rail_fix", "staging").ref == "rail_fix@3"
    assert len(prompt_gets(langfuse)) == 2


def test_langfuse_down_serves_the_local_registry_and_langfuse_again_when_back(
    langfuse: FakeLangfuse, registry: PromptRegistry
) -> None:
    clock = Clock()
    source = source_for(langfuse, registry, clock)
    assert source.resolve("rail_fix", "staging").ref == "rail_fix@2"  # from Langfuse

    langfuse.stop()
    clock.now += TTL_S
    local = source.resolve("rail_fix", "staging")
    assert local.ref == "rail_fix@1"  # what the local registry's staging points to
    assert local.source == registry.resolve("rail_fix", "staging").source

    langfuse.start()  # back, but not asked again until retry_after_s has passed
    clock.now += RETRY_S - 1
    assert source.resolve("rail_fix", "staging").ref == "rail_fix@1"
    assert source.resolve("rail_fix", "production").ref == "rail_fix@1"
    assert len(prompt_gets(langfuse)) == 1

    clock.now += 1
    assert source.resolve("rail_fix", "staging").ref == "rail_fix@2"  # Langfuse serves again
    assert len(prompt_gets(langfuse)) == 2


@pytest.mark.parametrize(
    ("prompt", "config", "kind"),
    [
        (SEED_TEXT + "\n{{ operator_name }}", SEED_CONFIG, "text"),  # a variable nobody passes
        ("{% if passages %}unclosed", SEED_CONFIG, "text"),  # Jinja syntax error
        (SEED_TEXT, {"stop": "\n### ", "max_context_chars": 6000}, "text"),  # stop not a list
        (SEED_TEXT, {**SEED_CONFIG, "max_context_chars": 0}, "text"),
        ([{"role": "system", "content": SEED_TEXT}], SEED_CONFIG, "chat"),  # a chat prompt
    ],
    ids=["undefined-variable", "syntax-error", "bad-stop", "no-context-budget", "chat-prompt"],
)
def test_a_langfuse_prompt_that_fails_validation_is_refused_never_served(
    prompt: object,
    config: object,
    kind: str,
    registry: PromptRegistry,
) -> None:
    clock = Clock()
    with fake_langfuse() as langfuse:
        langfuse.create_prompt("rail_fix", prompt, config=config, labels=["production"], type=kind)
        source = source_for(langfuse, registry, clock)
        served = source.resolve("rail_fix", "production")
        assert served.ref == "rail_fix@1"  # the local registry's production
        assert served.source == registry.resolve("rail_fix", "production").source
        assert len(prompt_gets(langfuse)) == 1
        if kind == "chat":  # Langfuse lets no text version join a chat prompt
            return
        # A refusal is not an outage: other labels are still read from Langfuse ...
        assert langfuse.create_prompt("rail_fix", SEED_TEXT, labels=["dev"]).version == 2
        assert source.resolve("rail_fix", "dev").ref == "rail_fix@2"
        # ... and once a valid version is labelled production, it is served after the TTL.
        langfuse.set_labels("rail_fix", 2, ["production"])
        clock.now += TTL_S
        assert source.resolve("rail_fix", "production").ref == "rail_fix@2"


def test_a_label_langfuse_lacks_is_served_locally_without_marking_langfuse_down(
    langfuse: FakeLangfuse, registry: PromptRegistry
) -> None:
    source = source_for(langfuse, registry)
    assert source.resolve("rail_fix", "dev").ref == "rail_fix@1"  # Langfuse: 404; local has dev
    assert source.resolve("rail_fix", "staging").ref == "rail_fix@2"  # still from Langfuse
    with pytest.raises(NotFound):
        source.resolve("rail_fix", "nowhere")


def test_keys_langfuse_refuses_fall_back_to_the_local_registry(
    langfuse: FakeLangfuse, registry: PromptRegistry
) -> None:
    source = LangfusePromptSource.connect(
        langfuse.url,
        langfuse.public_key,
        "sk-lf-wrong",
        LocalPromptSource(registry),
        timeout_s=2,
        cache_ttl_s=TTL_S,
    )
    assert source.resolve("rail_fix", "staging").ref == "rail_fix@1"
    (request,) = langfuse.requests_to("GET", "/api/public/v2/prompts/rail_fix")
    assert request.headers["authorization"].startswith("Basic ")


def test_ab_arms_are_langfuse_labels_with_sticky_assignment(
    langfuse: FakeLangfuse, registry: PromptRegistry
) -> None:
    """production (v1) against exp-b (v3), a label only Langfuse has; a session stays on its
    arm across requests and replicas, exactly as PromptExperiment assigns it."""
    experiment = PromptExperiment("production", "exp-b", 0.5, name="rail_fix:production:exp-b")
    replicas = [
        DebugPipeline.standard(
            PipelineParts(
                passages=ScriptedPassages(),
                analyzer=ScriptedAnalyzer(),
                prompts=source_for(langfuse, registry),
                experiment=experiment,
            )
        )
        for _ in range(2)
    ]
    expected = {"production": "rail_fix@1", "exp-b": "rail_fix@3"}
    served: dict[str, set[str]] = {}
    for n in range(40):
        session = f"session-{n}"
        for replica in (*replicas, replicas[0]):
            summary = _summary(replica, DebugQuestion("Why does P12 not lock?", session_id=session))
            arm = experiment.assign(session)
            assert (summary.prompt_variant, summary.prompt_version) == (arm, expected[arm])
            served.setdefault(session, set()).add(summary.prompt_version)
    assert all(len(versions) == 1 for versions in served.values())  # sticky
    assert {v for versions in served.values() for v in versions} == set(expected.values())


def test_startup_accepts_labels_that_only_langfuse_has_and_refuses_unknown_ones(
    langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    settings = OrchestratorSettings(
        prompt_registry_dir=tmp_path / "registry",
        experiment_label="exp-b",
        langfuse_host=langfuse.url,
        langfuse_public_key=langfuse.public_key,
        langfuse_secret_key=langfuse.secret_key,
    )
    assert prompt_source(settings).resolve("rail_fix", "exp-b").ref == "rail_fix@3"
    with pytest.raises(NotFound):
        prompt_source(settings.model_copy(update={"experiment_label": "nowhere"}))


def _summary(pipeline: DebugPipeline, question: DebugQuestion) -> DebugSummary:
    events = list(pipeline.run(question, deadline=time.monotonic() + 30))
    summary = events[-1]
    assert isinstance(summary, DebugSummary)
    return summary
