"""The local prompt registry: seeded versions, labels, audit log, rollback, diff."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from raildebug.errors import InvalidRequest, NotFound
from services.orchestrator.prompt_registry import PromptRegistry
from services.orchestrator.prompting import PROMPTS_DIR

V1 = (PROMPTS_DIR / "rail_fix@1.toml").read_text()
V2 = V1.replace("version = 1", "version = 7").replace("Cause:", "Root cause:")


def test_seeded_from_the_shipped_template_with_standard_labels(tmp_path: Path) -> None:
    registry = PromptRegistry(tmp_path)
    assert registry.names() == ["rail_fix"]
    assert registry.labels("rail_fix") == {"dev": 1, "production": 1, "staging": 1}
    assert registry.resolve("rail_fix", "production").ref == "rail_fix@1"
    assert [e.action for e in registry.history("rail_fix")] == ["seed"] * 3
    # Opening again does not seed twice.
    assert len(PromptRegistry(tmp_path).versions("rail_fix")) == 1


def test_create_label_rollback_and_audit(tmp_path: Path) -> None:
    registry = PromptRegistry(tmp_path)
    version = registry.create("rail_fix", V2, author="ana", message="name the root cause")
    assert version == 2  # numbered by the registry, whatever the file declares
    template = registry.template("rail_fix", 2)
    assert template.ref == "rail_fix@2" and template.source.rstrip().endswith("Root cause:")

    registry.set_label("rail_fix", "staging", 2, actor="ana", reason="try on staging")
    assert registry.resolve("rail_fix", "staging").ref == "rail_fix@2"
    assert registry.resolve("rail_fix", "production").ref == "rail_fix@1"
    registry.set_label("rail_fix", "production", 2, actor="bo", reason="staging looked good")

    restored = registry.rollback("rail_fix", "production", actor="cy", reason="worse feedback")
    assert restored == 1
    assert registry.resolve("rail_fix", "production").ref == "rail_fix@1"

    moves = registry.history("rail_fix", "production")
    assert [(e.action, e.actor, e.previous_version, e.version, e.reason) for e in moves[-2:]] == [
        ("label", "bo", 1, 2, "staging looked good"),
        ("rollback", "cy", 2, 1, "worse feedback"),
    ]
    assert {v.version: v.labels for v in registry.versions("rail_fix")} == {
        1: ("dev", "production"),
        2: ("staging",),
    }


def test_changes_are_seen_by_another_process_on_the_same_registry(tmp_path: Path) -> None:
    PromptRegistry(tmp_path).create("rail_fix", V2, author="ana", message="v2")
    PromptRegistry(tmp_path).set_label("rail_fix", "canary", 2, actor="ana", reason="custom")
    assert PromptRegistry(tmp_path).resolve("rail_fix", "canary").version == 2


def test_diff_shows_the_changed_lines(tmp_path: Path) -> None:
    registry = PromptRegistry(tmp_path)
    registry.create("rail_fix", V2, author="ana", message="v2")
    diff = registry.diff("rail_fix", 1, 2)
    assert "-Cause:'''" in diff and "+Root cause:'''" in diff
    assert "-version = 1" in diff and "+version = 2" in diff


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda r: r.rollback("rail_fix", "production", "a", "why"), "no earlier version"),
        (lambda r: r.set_label("rail_fix", "production", 1, "a", " "), "needs a reason"),
        (lambda r: r.set_label("rail_fix", "Prod!", 1, "a", "x"), "must be lowercase"),
        (lambda r: r.create("rail_fix", "template = '{% if %}'\n", "a", "m"), "syntax error"),
        (lambda r: r.create("rail_fix", "stop = []\n", "a", "m"), "lacks the key"),
        (lambda r: r.create("rail_fix", V2, "a", ""), "needs a message"),
    ],
)
def test_bad_changes_are_refused_with_a_reason(
    tmp_path: Path, action: Callable[[PromptRegistry], object], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        action(PromptRegistry(tmp_path))


def test_unknown_names_versions_and_labels_say_what_exists(tmp_path: Path) -> None:
    registry = PromptRegistry(tmp_path)
    with pytest.raises(NotFound, match="known: \\['rail_fix'\\]"):
        registry.versions("nope")
    with pytest.raises(NotFound, match="versions: \\[1\\]"):
        registry.set_label("rail_fix", "staging", 9, "a", "x")
    with pytest.raises(NotFound, match="raildebug prompts label"):
        registry.resolve("rail_fix", "qa")
