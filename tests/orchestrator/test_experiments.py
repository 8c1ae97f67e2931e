"""A/B assignment: sticky per caller, split as configured, independent per experiment."""

from __future__ import annotations

import math

import pytest

from services.orchestrator.experiments import PromptExperiment

IDS = [f"session-{n}" for n in range(1000)]


def test_a_caller_stays_on_its_variant() -> None:
    first = PromptExperiment("production", "staging", 0.5, name="exp")
    again = PromptExperiment("production", "staging", 0.5, name="exp")  # another replica
    assignments = [first.assign(i) for i in IDS]
    assert assignments == [again.assign(i) for i in IDS]
    assert assignments == [first.assign(i) for i in IDS]


@pytest.mark.parametrize("share", [0.1, 0.3, 0.5])
def test_split_is_within_three_sigma_over_1000_ids(share: float) -> None:
    experiment = PromptExperiment("production", "staging", share, name="exp")
    treated = sum(experiment.assign(i) == "staging" for i in IDS)
    tolerance = 3 * math.sqrt(len(IDS) * share * (1 - share))
    assert abs(treated - share * len(IDS)) <= tolerance, treated


def test_experiments_with_different_names_split_independently() -> None:
    a = PromptExperiment("production", "staging", 0.5, name="a")
    b = PromptExperiment("production", "staging", 0.5, name="b")
    agree = sum(a.assign(i) == b.assign(i) for i in IDS)
    assert 400 < agree < 600  # independent halves agree about half the time


def test_without_a_treatment_everyone_gets_control() -> None:
    assert {PromptExperiment("production").assign(i) for i in IDS} == {"production"}
    with pytest.raises(ValueError, match="treatment_share"):
        PromptExperiment("production", "staging", 1.5)
