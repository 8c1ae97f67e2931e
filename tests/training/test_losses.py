"""The distillation objective against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from training.dataset.formatting import IGNORE
from training.losses import cross_entropy_sum, distillation_loss_sum


def _log_softmax(values: list[float], t: float) -> list[float]:
    scaled = [v / t for v in values]
    z = math.log(sum(math.exp(v) for v in scaled))
    return [v - z for v in scaled]


@pytest.mark.parametrize(("t", "alpha"), [(1.0, 0.5), (2.0, 0.5), (4.0, 0.9), (2.0, 0.0)])
def test_kd_loss_matches_hand_computation(t: float, alpha: float) -> None:
    student = [2.0, 0.5, -1.0, 0.0]
    teacher_top = [3.0, 1.0]  # teacher logits of tokens 0 and 3
    target = 0
    p_t = [math.exp(x) for x in _log_softmax(teacher_top, t)]
    log_q = _log_softmax(student, t)
    kl = sum(p * (math.log(p) - log_q[i]) for p, i in zip(p_t, [0, 3], strict=True))
    ce = -_log_softmax(student, 1.0)[target]
    expected = alpha * t * t * kl + (1 - alpha) * ce

    logits = torch.tensor([[student, [9.0, 9.0, 9.0, 9.0]]])  # second position is masked
    targets = torch.tensor([[target, IGNORE]])
    values = torch.tensor([[teacher_top, [0.0, 0.0]]])
    indices = torch.tensor([[[0, 3], [0, 1]]])
    got = distillation_loss_sum(logits, targets, values, indices, t, alpha)
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_kd_term_vanishes_when_student_matches_teacher_and_scales_with_t_squared() -> None:
    logits = torch.tensor([[[1.0, 2.0, 3.0]]])
    targets = torch.tensor([[2]])
    indices = torch.tensor([[[0, 1, 2]]])
    same = distillation_loss_sum(logits, targets, logits.clone(), indices, 2.0, 1.0)
    assert float(same) == pytest.approx(0.0, abs=1e-6)
    other = torch.tensor([[[3.0, 1.0, 0.0]]])
    kd_t1 = float(distillation_loss_sum(logits, targets, other, indices, 1.0, 1.0))
    kl_t3 = float(distillation_loss_sum(logits, targets, other, indices, 3.0, 1.0)) / 9
    assert kd_t1 > 0 and kl_t3 > 0 and kl_t3 != pytest.approx(kd_t1)


def test_cross_entropy_ignores_masked_positions() -> None:
    logits = torch.tensor([[[0.0, 0.0], [5.0, -5.0]]])
    loss = cross_entropy_sum(logits, torch.tensor([[0, IGNORE]]))
    assert float(loss) == pytest.approx(math.log(2))
