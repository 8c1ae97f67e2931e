"""The rail-fix metric on hand-made good and bad answers to one gold fix."""

from __future__ import annotations

import dspy
import pytest

from training.dspy.metric import (
    PASS_THRESHOLD,
    gold_identifiers,
    rail_fix_metric,
    score_fix,
    token_f1,
)

CONTEXT = """[1] src/ace/axle_counter.c:122-140 (ace_check_sweep)
KNOWN ISSUE SIXL-2317: the axle-number comparison uses '>' instead of '>='.
    bool enough = (sweep_axles > s->min_sweep_axles);
[2] docs/config-axle-counter.md:10-30
`ace_min_sweep_axles` (default 4): a sweep must have at least this many axles."""

GOLD = (
    "The sweep check in `ace_check_sweep()` compares with `>` instead of `>=` (SIXL-2317), so a "
    "sweep with exactly `ace_min_sweep_axles` axles is rejected and the section stays disturbed "
    "(E31-B). Fix: `bool enough = (sweep_axles >= s->min_sweep_axles);`"
)

GOOD = (
    "ace_check_sweep() rejects a sweep with exactly min_sweep_axles axles because it uses > "
    "instead of >= (SIXL-2317) [1]. The section stays disturbed (E31-B).\n"
    "```c\nbool enough = (sweep_axles >= s->min_sweep_axles);\n```"
)
VAGUE = "Check the hardware and restart the system. If the problem persists, contact support."
INVENTED = (
    "The bug is in axle_reset_handler() which ignores sweep_timeout_ms; set "
    "`sweep_timeout_ms = 0;` in counter_main.c (SIXL-9999)."
)


def example(fix: str = GOLD) -> dspy.Example:
    return dspy.Example(
        query="Section AS203 stays disturbed after a four-axle sweep. Why?",
        context=CONTEXT,
        fix=fix,
        identifiers=gold_identifiers(fix),
    ).with_inputs("query", "context")


def test_gold_identifiers_are_the_named_code_config_and_error_ids() -> None:
    identifiers = gold_identifiers(GOLD)
    for expected in ("ace_check_sweep()", "ace_min_sweep_axles", "SIXL-2317", "E31-B"):
        assert expected in identifiers
    assert ">" not in identifiers  # too short to be an identifier


def test_a_grounded_fix_with_code_passes() -> None:
    score = rail_fix_metric(example(), dspy.Prediction(fix=GOOD))
    assert isinstance(score, float)
    assert score >= 0.6
    assert rail_fix_metric(example(), dspy.Prediction(fix=GOOD), trace=[]) is True


def test_a_vague_fix_scores_low_and_fails_bootstrapping() -> None:
    score = rail_fix_metric(example(), dspy.Prediction(fix=VAGUE))
    assert isinstance(score, float)
    assert score < 0.15
    assert rail_fix_metric(example(), dspy.Prediction(fix=VAGUE), trace=[]) is False


def test_invented_identifiers_are_not_grounded() -> None:
    invented = score_fix(INVENTED, GOLD, gold_identifiers(GOLD), CONTEXT)
    good = score_fix(GOOD, GOLD, gold_identifiers(GOLD), CONTEXT)
    assert invented.grounded < 0.3
    assert good.grounded >= 0.75  # E31-B is not in the passages: the one ungrounded token
    assert invented.identifiers < good.identifiers
    assert invented.total < PASS_THRESHOLD < good.total


@pytest.mark.parametrize("fix", ["", "   ", None])
def test_a_missing_or_empty_fix_field_scores_zero(fix: str | None) -> None:
    prediction = dspy.Prediction() if fix is None else dspy.Prediction(fix=fix)
    assert rail_fix_metric(example(), prediction) == 0.0


def test_code_presence_counts_only_once_the_fix_has_a_correction() -> None:
    with_code = score_fix("Use `x >= y;` here", GOLD, [], CONTEXT)
    without = score_fix("It is broken somewhere", GOLD, [], CONTEXT)
    assert with_code.has_code == 1.0
    assert without.has_code == 0.0


def test_token_f1_is_symmetric_overlap() -> None:
    assert token_f1("a b c", "a b c") == pytest.approx(1.0)
    assert token_f1("a b", "c d") == 0.0
    assert token_f1("a b c d", "a b") == pytest.approx(token_f1("a b", "a b c d"))
