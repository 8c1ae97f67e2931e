"""`raildebug prompts push NAME --to langfuse` and `pull NAME --from langfuse`, run in this
process against the in-process Langfuse (tests/support/fake_langfuse.py) through the SDK:
numbers, labels and messages kept both ways, refusals, conflicts, and the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.cli.main import main
from services.orchestrator import prompt_registry
from services.orchestrator.prompt_registry import PromptRegistry
from services.orchestrator.prompting import PROMPTS_DIR
from tests.support.fake_langfuse import FakeLangfuse, fake_langfuse
from tests.support.prompts import shipped_subset

SEED = (PROMPTS_DIR / "rail_fix@1.toml").read_text()
V2 = SEED.replace("Cause:", "Root cause:")


@pytest.fixture
def langfuse(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLangfuse]:
    with fake_langfuse() as fake:
        monkeypatch.setenv("RAILDEBUG_ORCHESTRATOR_LANGFUSE_HOST", fake.url)
        monkeypatch.setenv("RAILDEBUG_ORCHESTRATOR_LANGFUSE_PUBLIC_KEY", fake.public_key)
        monkeypatch.setenv("RAILDEBUG_ORCHESTRATOR_LANGFUSE_SECRET_KEY", fake.secret_key)
        yield fake


@pytest.fixture
def directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry with rail_fix@1 (seed: production, staging, dev) and @2 (staging), as one
    seeded when rail_fix@1 was the only shipped version; every registry the test opens (the
    CLI's too) sees only that version shipped."""
    shipped = shipped_subset(tmp_path / "shipped", "rail_fix@1")
    monkeypatch.setattr(prompt_registry, "SHIPPED_PROMPTS", shipped)
    registry = PromptRegistry(tmp_path / "registry")
    registry.create("rail_fix", V2, author="ana", message="name the root cause")
    registry.set_label("rail_fix", "staging", 2, actor="ana", reason="try it")
    registry.close()
    return tmp_path / "registry"


def prompts(directory: Path, *args: str) -> int:
    return main(["prompts", "--registry", str(directory), *args])


def test_push_creates_the_versions_with_their_numbers_messages_and_labels(
    langfuse: FakeLangfuse, directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert prompts(directory, "push", "rail_fix", "--to", "langfuse", "--actor", "ana") == 0
    out = capsys.readouterr().out
    assert "langfuse: created rail_fix@1" in out and "langfuse: created rail_fix@2" in out

    v1, v2 = langfuse.version("rail_fix", 1), langfuse.version("rail_fix", 2)
    assert v1.commit_message == "imported from rail_fix@1.toml"
    assert v2.commit_message == "name the root cause"
    assert v1.type == v2.type == "text"
    assert "Root cause:" in v2.prompt and "Root cause:" not in v1.prompt
    assert v2.config["stop"] == ["\n### ", "\nQuestion:", "<end_of_turn>"]
    assert v2.config["max_context_chars"] == 6000
    assert v2.config["description"].startswith("Grounded cause-and-fix answer")
    assert langfuse.labels("rail_fix") == {"production": 1, "dev": 1, "staging": 2, "latest": 2}

    registry = PromptRegistry(directory)
    pushes = [e for e in registry.history("rail_fix") if e.action == "push"]
    assert {(e.actor, e.label, e.version, e.previous_version) for e in pushes} == {
        ("ana", "", 1, None),
        ("ana", "", 2, None),
        ("ana", "dev", 1, None),
        ("ana", "production", 1, None),
        ("ana", "staging", 2, None),
    }

    # Again: nothing to do, so nothing but reads is sent.
    writes = len(langfuse.requests_to("POST", "/")) + len(langfuse.requests_to("PATCH", "/"))
    assert prompts(directory, "push", "rail_fix", "--to", "langfuse") == 0
    assert "already in sync" in capsys.readouterr().out
    assert len(langfuse.requests_to("POST", "/")) + len(langfuse.requests_to("PATCH", "/")) == (
        writes
    )


def test_pull_brings_langfuse_versions_and_label_moves_home_and_rollback_undoes_them(
    langfuse: FakeLangfuse, directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert prompts(directory, "push", "rail_fix", "--to", "langfuse", "--actor", "ana") == 0
    # In Langfuse: maria adds v3 and moves production to it; someone moves staging back to 1.
    text = langfuse.version("rail_fix", 2).prompt.replace("Root cause:", "Likely cause:")
    config = {**langfuse.version("rail_fix", 2).config, "max_context_chars": 5000}
    langfuse.create_prompt(
        "rail_fix",
        text,
        config=config,
        labels=["production"],
        commit_message="shorter answers",
        created_by="maria",
    )
    langfuse.set_labels("rail_fix", 1, ["staging"])
    capsys.readouterr()

    assert prompts(directory, "pull", "rail_fix", "--from", "langfuse", "--actor", "ben") == 0
    out = capsys.readouterr().out
    assert "local: created rail_fix@3" in out
    assert "production: 1 → 3" in out and "staging: 2 → 1" in out

    registry = PromptRegistry(directory)
    assert registry.labels("rail_fix") == {"production": 3, "staging": 1, "dev": 1}
    v3 = registry.versions("rail_fix")[2]
    assert (v3.version, v3.author, v3.message) == (3, "langfuse:maria", "shorter answers")
    template = registry.template("rail_fix", 3)
    assert (template.source, template.max_context_chars) == (text, 5000)
    assert template.stop == ("\n### ", "\nQuestion:", "<end_of_turn>")

    pulls = [e for e in registry.history("rail_fix") if e.action == "pull"]
    assert {(e.actor, e.label, e.version, e.previous_version) for e in pulls} == {
        ("ben", "", 3, None),
        ("ben", "production", 3, 1),
        ("ben", "staging", 1, 2),
    }
    assert all("from Langfuse" in e.reason for e in pulls if e.label)

    # A pulled move is undone like any other.
    assert prompts(directory, "rollback", "rail_fix", "production", "--reason", "too short") == 0
    assert PromptRegistry(directory).labels("rail_fix")["production"] == 1

    # And pushing afterwards moves production back in Langfuse, recorded with what it was there.
    assert prompts(directory, "push", "rail_fix", "--to", "langfuse", "--actor", "ben") == 0
    assert langfuse.labels("rail_fix")["production"] == 1
    last = PromptRegistry(directory).history("rail_fix", "production")[-1]
    assert (last.actor, last.action, last.version, last.previous_version) == ("ben", "push", 1, 3)


def test_a_prompt_that_exists_only_in_langfuse_is_pulled_whole(
    langfuse: FakeLangfuse, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "Answer briefly.\n{% for p in passages %}{{ p.label }} {{ p.text }}\n{% endfor %}"
    langfuse.create_prompt("rail_fix_short", text, config={"stop": []}, commit_message="first")
    langfuse.create_prompt(
        "rail_fix_short", text + "{{ question }}", labels=["production", "exp.b"]
    )  # no commit message; a label with a dot, which local labels cannot have
    directory = tmp_path / "registry"
    assert prompts(directory, "pull", "rail_fix_short", "--from", "langfuse") == 0
    out = capsys.readouterr().out
    assert "label 'exp.b' not pulled" in out

    registry = PromptRegistry(directory)
    assert [(v.version, v.message) for v in registry.versions("rail_fix_short")] == [
        (1, "first"),
        (2, "created in Langfuse without a commit message"),
    ]
    assert registry.labels("rail_fix_short") == {"production": 2}
    assert registry.template("rail_fix_short", 1).max_context_chars == 6000  # the default


def test_pull_refuses_every_version_when_one_fails_validation(
    langfuse: FakeLangfuse, directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert prompts(directory, "push", "rail_fix", "--to", "langfuse") == 0
    good = langfuse.version("rail_fix", 2).prompt
    langfuse.create_prompt("rail_fix", good + "{{ operator }}", labels=["production"])  # v3
    langfuse.create_prompt("rail_fix", good, labels=["staging"])  # v4, fine on its own
    capsys.readouterr()

    assert prompts(directory, "pull", "rail_fix", "--from", "langfuse") == 1
    err = capsys.readouterr().err
    assert "nothing pulled" in err and "rail_fix@3" in err and "operator" in err
    registry = PromptRegistry(directory)
    assert [v.version for v in registry.versions("rail_fix")] == [1, 2]
    assert registry.labels("rail_fix") == {"production": 1, "staging": 2, "dev": 1}


def test_diverged_histories_are_refused_both_ways(
    langfuse: FakeLangfuse, directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = PromptRegistry(directory).template("rail_fix", 1)
    langfuse.create_prompt("rail_fix", seed.source, config={"stop": list(seed.stop)})  # same v1
    langfuse.create_prompt("rail_fix", seed.source + " ", commit_message="someone else's v2")
    push = ("push", "rail_fix", "--to", "langfuse")
    pull = ("pull", "rail_fix", "--from", "langfuse")
    for action in (push, pull):
        assert prompts(directory, *action) == 1
        assert "rail_fix@2 is not the same here and in Langfuse" in capsys.readouterr().err
    assert [v.version for v in PromptRegistry(directory).versions("rail_fix")] == [1, 2]
    assert not langfuse.requests_to("PATCH", "/api/public/v2/prompts")


def test_keys_langfuse_refuses_are_reported(
    langfuse: FakeLangfuse,
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RAILDEBUG_ORCHESTRATOR_LANGFUSE_SECRET_KEY", "sk-lf-wrong")
    assert prompts(directory, "push", "rail_fix", "--to", "langfuse") == 1
    err = capsys.readouterr().err
    assert "refused the keys" in err and "Invalid credentials" in err
    assert not [e for e in PromptRegistry(directory).history("rail_fix") if e.action == "push"]
