"""Losses over answer tokens only: SFT cross-entropy and the distillation objective."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from training.dataset.formatting import IGNORE, Batch


def answer_logits(model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token logits at answer positions and the tokens they must predict.

    Returns (logits [B, K-1, V], targets [B, K-1]); only the last K positions are projected
    onto the vocabulary, which is most of the compute for a 262k-token vocabulary.
    """
    keep = batch.logits_to_keep
    output = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        logits_to_keep=keep,
        use_cache=False,
    )
    logits = output.logits[:, :-1, :].float()
    targets = batch.labels[:, batch.labels.shape[1] - keep + 1 :]
    return logits, targets


def cross_entropy_sum(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )


def distillation_loss_sum(
    student_logits: torch.Tensor,
    targets: torch.Tensor,
    teacher_values: torch.Tensor,
    teacher_indices: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """Sum over answer tokens of alpha*T^2*KL(teacher_T || student_T) + (1-alpha)*CE.

    The teacher is known only by its top-k logits, so both distributions are taken over those
    k tokens (teacher renormalised over its top-k; student's full-vocabulary log-probabilities
    gathered there). T^2 keeps the KL gradient on the CE's scale as T grows (Hinton et al.).
    """
    mask = targets != IGNORE
    teacher_log_p = F.log_softmax(teacher_values.float() / temperature, dim=-1)
    student_log_p = F.log_softmax(student_logits / temperature, dim=-1).gather(-1, teacher_indices)
    kl = (teacher_log_p.exp() * (teacher_log_p - student_log_p)).sum(-1)
    kd = (kl * mask).sum() * temperature**2
    ce = cross_entropy_sum(student_logits, targets)
    return alpha * kd + (1 - alpha) * ce
