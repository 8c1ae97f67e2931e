"""The local prompt registry: seeded versions, labels, audit log, rollback, diff."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from raildebug.errors import InvalidRequest, NotFound
from services.orchestrator.prompt_registry import STANDARD_LABELS, PromptRegistry
from services.orchestrator.prompting import PROMPTS_DIR, load_template
from tests.support.prompts import shipped_subset

V1 = (PROMPTS_DIR / "rail_fix@1.toml").read_text()
SHIPPED_V2 = (PROMPTS_DIR / "rail_fix@2.toml").read_text()
V2 = V1.replace("version = 1", "version = 7").replace("Cause:", "Root cause:")


SHIPPED = sorted(
    int(path.stem.split("@")[1]) for path in PROMPTS_DIR.glob("rail_fix@*.toml")
)  # every shipped version of rail_fix: 1, 2, 3, ...


def two_shipped(tmp_path: Path) -> PromptRegistry:
    """A registry seeded when rail_fix@1 and @2 were the shipped versions (@2 production), so
    these tests keep their numbers when a newer version ships."""
    shipped = shipped_subset(tmp_path / "shipped", "rail_fix@1", "rail_fix@2")
    return PromptRegistry(tmp_path / "registry", seed_from=shipped)


def test_seeded_from_the_shipped_templates_with_standard_labels_on_the_newest(
    tmp_path: Path,
) -> None:
    registry = PromptRegistry(tmp_path)
    newest = SHIPPED[-1]
    assert registry.names() == ["rail_fix"] and len(SHIPPED) == newest and SHIPPED[0] == 1
    assert [(v.version, v.author, v.message) for v in registry.versions("rail_fix")] == [
        (n, "seed", f"imported from rail_fix@{n}.toml") for n in SHIPPED
    ]
    assert (registry.body("rail_fix", 1), registry.body("rail_fix", 2)) == (V1, SHIPPED_V2)
    assert registry.labels("rail_fix") == {"dev": newest, "production": newest, "staging": newest}
    assert registry.resolve("rail_fix", "production").ref == f"rail_fix@{newest}"
    seeds = registry.history("rail_fix")
    assert [(e.action, e.label, e.version, e.reason) for e in seeds] == [
        ("seed", label, newest, f"rail_fix@{newest}.toml") for label in STANDARD_LABELS
    ]
    # Opening again does not seed twice.
    again = PromptRegistry(tmp_path)
    assert len(again.versions("rail_fix")) == len(SHIPPED)
    assert again.history("rail_fix") == seeds


def test_a_registry_seeded_before_a_version_shipped_gains_it_without_its_labels_moving(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "registry"
    then = shipped_subset(tmp_path / "shipped-then", "rail_fix@1")
    old = PromptRegistry(directory, seed_from=then)
    assert [v.version for v in old.versions("rail_fix")] == [1]
    assert old.labels("rail_fix") == {"dev": 1, "production": 1, "staging": 1}
    old.set_label("rail_fix", "canary", 1, actor="ana", reason="custom")
    history = old.history("rail_fix")
    old.close()

    registry = PromptRegistry(directory)  # every version shipped today
    gained = registry.versions("rail_fix")[1:]
    assert [(v.version, v.author, v.message, v.labels) for v in gained] == [
        (n, "seed", f"imported from rail_fix@{n}.toml", ()) for n in SHIPPED[1:]
    ]
    assert registry.template("rail_fix", 2) == load_template("rail_fix@2")
    # Labels stay where they were: moving one is an operator's decision, with an audit entry.
    assert registry.labels("rail_fix") == {"canary": 1, "dev": 1, "production": 1, "staging": 1}
    assert registry.resolve("rail_fix", "production").ref == "rail_fix@1"
    assert registry.history("rail_fix") == history
    registry.close()

    # Opening again imports nothing more; a new version can then be promoted as usual.
    registry = PromptRegistry(directory)
    assert [v.version for v in registry.versions("rail_fix")] == SHIPPED
    registry.set_label("rail_fix", "staging", 2, actor="ana", reason="try the chat prompt")
    assert registry.resolve("rail_fix", "staging").ref == "rail_fix@2"


def test_create_label_rollback_and_audit(tmp_path: Path) -> None:
    registry = two_shipped(tmp_path)  # rail_fix@1, @2 (production, staging, dev)
    version = registry.create("rail_fix", V2, author="ana", message="name the root cause")
    assert version == 3  # numbered by the registry, whatever the file declares
    template = registry.template("rail_fix", 3)
    assert template.ref == "rail_fix@3" and template.source.rstrip().endswith("Root cause:")

    registry.set_label("rail_fix", "staging", 3, actor="ana", reason="try on staging")
    assert registry.resolve("rail_fix", "staging").ref == "rail_fix@3"
    assert registry.resolve("rail_fix", "production").ref == "rail_fix@2"
    registry.set_label("rail_fix", "production", 3, actor="bo", reason="staging looked good")

    restored = registry.rollback("rail_fix", "production", actor="cy", reason="worse feedback")
    assert restored == 2
    assert registry.resolve("rail_fix", "production").ref == "rail_fix@2"

    moves = registry.history("rail_fix", "production")
    assert [(e.action, e.actor, e.previous_version, e.version, e.reason) for e in moves[-2:]] == [
        ("label", "bo", 2, 3, "staging looked good"),
        ("rollback", "cy", 3, 2, "worse feedback"),
    ]
    assert {v.version: v.labels for v in registry.versions("rail_fix")} == {
        1: (),
        2: ("dev", "production"),
        3: ("staging",),
    }


def test_changes_are_seen_by_another_process_on_the_same_registry(tmp_path: Path) -> None:
    version = two_shipped(tmp_path).create("rail_fix", V2, author="ana", message="v2")
    two_shipped(tmp_path).set_label("rail_fix", "canary", version, actor="ana", reason="x")
    assert two_shipped(tmp_path).resolve("rail_fix", "canary").version == version == 3


def test_diff_shows_the_changed_lines(tmp_path: Path) -> None:
    registry = two_shipped(tmp_path)
    registry.create("rail_fix", V2, author="ana", message="v2")
    diff = registry.diff("rail_fix", 1, 3)
    assert "-Cause:'''" in diff and "+Root cause:'''" in diff
    assert "-version = 1" in diff and "+version = 3" in diff


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
    registry = two_shipped(tmp_path)
    with pytest.raises(NotFound, match="known: \\['rail_fix'\\]"):
        registry.versions("nope")
    with pytest.raises(NotFound, match="versions: \\[1, 2\\]"):
        registry.set_label("rail_fix", "staging", 9, "a", "x")
    with pytest.raises(NotFound, match="raildebug prompts label"):
        registry.resolve("rail_fix", "qa")
