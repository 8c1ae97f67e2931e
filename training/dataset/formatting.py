"""Examples to token ids through the orchestrator's own prompt template.

The prompt is rendered exactly as the orchestrator renders it at serving time and tokenized on
its own (with BOS), the answer separately (then EOS): the model is trained on the same token
boundary it sees when llama.cpp continues the served prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from services.orchestrator.prompting import PromptTemplate
from training.dataset.examples import SFTExample

IGNORE = -100


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    answer_start: int  # first answer token; everything before it is prompt

    @property
    def answer_tokens(self) -> int:
        return len(self.input_ids) - self.answer_start


def render_prompt(template: PromptTemplate, example: SFTExample) -> str:
    passages = template.fit_passages(example.context_passages())
    return template.render(example.debug_question(), passages)


def tokenize_example(
    tokenizer: Any, template: PromptTemplate, example: SFTExample, max_seq_len: int
) -> TokenizedExample:
    prompt = _ids(tokenizer, render_prompt(template, example))
    if not prompt or prompt[0] != tokenizer.bos_token_id:
        prompt = [tokenizer.bos_token_id, *prompt]
    answer = [*_ids(tokenizer, example.answer.lstrip()), tokenizer.eos_token_id]
    answer = answer[: max(max_seq_len // 2, max_seq_len - len(prompt))]
    prompt = keep_tail(prompt, max_seq_len - len(answer))
    return TokenizedExample(input_ids=prompt + answer, answer_start=len(prompt))


def keep_tail(ids: list[int], limit: int) -> list[int]:
    """At most `limit` tokens: BOS and the last ones, where the question and "Cause:" sit."""
    return ids if len(ids) <= limit else [ids[0], *ids[len(ids) - limit + 1 :]]


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    labels: torch.Tensor  # IGNORE outside answers; aligned with input_ids (not shifted)
    logits_to_keep: int  # answers sit at the right end (left padding): only these need logits

    @property
    def answer_tokens(self) -> int:
        return int((self.labels != IGNORE).sum())

    @property
    def tokens(self) -> int:
        return int(self.attention_mask.sum())


def collate(examples: list[TokenizedExample], pad_id: int) -> Batch:
    """Left padding, with positions counted from each sequence's first real token."""
    length = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), length), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), length), dtype=torch.long)
    for row, example in enumerate(examples):
        offset = length - len(example.input_ids)
        ids[row, offset:] = torch.tensor(example.input_ids)
        mask[row, offset:] = 1
        start = offset + example.answer_start
        labels[row, start:] = ids[row, start:]
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    keep = max(e.answer_tokens for e in examples) + 1
    return Batch(ids, mask, positions, labels, min(keep, length))
