"""Admission by expected wait (services/inference/admission.py), on plain numbers: the shared
schedule, the fitted step costs, and when a deadline makes the queue a refusal."""

from __future__ import annotations

import random

import pytest

from services.inference.admission import (
    AdmissionModel,
    CompletionRatio,
    Estimate,
    StepCost,
    Work,
    schedule,
)


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_nothing_ahead_starts_now_and_takes_its_own_time() -> None:
    assert schedule([], 3.0, slots=4) == (0.0, 3.0)


def test_running_requests_share_the_backend_and_a_free_slot_starts_the_next() -> None:
    # 2 slots: the 1 s and 3 s requests each progress at half speed; the 1 s one ends at 2 s,
    # the new one starts then and shares with the rest of the 3 s one (2 s left): 1 s of its
    # own work at half speed ends at 4 s.
    assert schedule([1.0, 3.0], 1.0, slots=2) == pytest.approx((2.0, 4.0))
    # a free slot: start at once, shared from the first moment
    assert schedule([3.0], 1.0, slots=2) == pytest.approx((0.0, 2.0))


def test_the_queue_is_first_in_first_out() -> None:
    assert schedule([2.0, 3.0], 1.0, slots=1) == pytest.approx((5.0, 6.0))
    with pytest.raises(ValueError):
        schedule([], 1.0, slots=0)


def test_step_costs_are_fitted_per_prompt_and_per_generated_token() -> None:
    cost = StepCost(min_steps=8)
    rng = random.Random(7)
    for _ in range(7):
        cost.observe(rng.randrange(0, 512), rng.randrange(1, 5), 0.05)
    assert cost.coefficients() is None, "no estimate before min_steps steps"
    for _ in range(300):  # a prefill token costs 0.5 ms, a generated one 20 ms, +-5 % noise
        prompt, decode = rng.choice([0, 0, 0, rng.randrange(1, 512)]), rng.randrange(1, 5)
        cost.observe(prompt, decode, (0.0005 * prompt + 0.02 * decode) * rng.uniform(0.95, 1.05))
    fitted = cost.coefficients()
    assert fitted is not None
    assert fitted == pytest.approx((0.0005, 0.02), rel=0.1)
    assert cost.seconds(Work(prompt_tokens=1000, decode_tokens=100)) == pytest.approx(2.5, rel=0.1)


def test_one_kind_of_token_gives_one_cost_for_both() -> None:
    cost = StepCost(min_steps=1)
    for decode in (1, 2, 3, 4) * 5:
        cost.observe(0, decode, 0.01 * decode)
    assert cost.coefficients() == pytest.approx((0.01, 0.01))


def test_the_completion_ratio_follows_what_requests_generate() -> None:
    ratio = CompletionRatio(weight=0.5)
    assert ratio.value == 1.0
    ratio.observe(64, 256)
    ratio.observe(64, 256)
    assert ratio.value == pytest.approx(0.4375)


def _measured(slots: int, seconds_per_token: float) -> AdmissionModel:
    model = AdmissionModel(slots, min_steps=1, clock=ManualClock())
    for _ in range(20):
        model.cost.observe(0, slots, seconds_per_token * slots)
    return model


def test_the_reported_overload_is_refused_instead_of_queued_past_the_deadline() -> None:
    """4 slots generating 256-token answers, 16 more waiting, 50 ms per token: a new caller
    with 120 s left would get a slot after ~2 minutes. Refuse it now."""
    model = _measured(slots=4, seconds_per_token=0.05)
    ahead = [model.work(1500, 256, produced=100)] * 4 + [model.work(1500, 256)] * 16
    new = model.work(1500, 256)
    estimate = model.estimate(ahead, new)
    assert estimate is not None
    assert estimate.start_s > 120
    clock = model._clock
    retry = model.refusal(estimate, deadline=clock() + 120.0)
    assert retry is not None and 0.1 <= retry <= 60
    # with the whole queue's time to spare it is admitted
    assert model.refusal(estimate, deadline=clock() + estimate.finish_s + 1) is None


def test_admitted_without_a_queue_without_a_deadline_or_without_measurements() -> None:
    model = _measured(slots=2, seconds_per_token=0.05)
    now = model._clock()
    # nothing ahead: even a request too big for its deadline starts (and ends DEADLINE_EXCEEDED)
    idle = model.estimate([], model.work(10, 2000))
    assert idle is not None and idle.start_s == 0
    assert model.refusal(idle, deadline=now + 0.5) is None
    busy = model.estimate([model.work(10, 2000)] * 2, model.work(10, 10))
    assert model.refusal(busy, deadline=None) is None
    assert AdmissionModel(2).estimate([Work(10, 2000)] * 2, Work(10, 10)) is None


def test_a_request_too_big_for_its_deadline_even_alone_is_not_called_overload() -> None:
    model = AdmissionModel(1, clock=ManualClock())
    # it would start in 1 s, but needs 100 s alone with 10 s to go: waiting is not its problem
    doomed = Estimate(start_s=1.0, finish_s=101.0, alone_s=100.0, ahead=1)
    assert model.refusal(doomed, deadline=model._clock() + 10) is None
    # still waiting when its deadline passes: refused whatever its size
    stuck = Estimate(start_s=20.0, finish_s=120.0, alone_s=100.0, ahead=5)
    assert model.refusal(stuck, deadline=model._clock() + 10) == pytest.approx(20.0)
    # it would fit alone; the queue is why not: retry once the excess has drained
    crowded = Estimate(start_s=4.0, finish_s=12.0, alone_s=2.0, ahead=3)
    assert model.refusal(crowded, deadline=model._clock() + 10) == pytest.approx(2.0)
