"""The teacher's side of distillation: greedy answers and their top-k logits, kept on disk.

Generating them is the slow part of `train distill` (about 7 minutes for 64 answers on 2 CPU
cores, against 3 minutes for a whole student), so they are stored with a key of everything
that made them and reused while that key holds: re-running after a failed gate or trying other
student settings starts at the student.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from training.config import DistillationSection
from training.dataset.formatting import TokenizedExample, collate
from training.losses import answer_logits


@dataclass(frozen=True)
class TeacherAnswer:
    example: TokenizedExample  # prompt + the teacher's own answer
    values: torch.Tensor  # [answer_tokens, k] top-k logits
    indices: torch.Tensor  # [answer_tokens, k] their token ids


@torch.no_grad()
def generate_answers(
    teacher: Any, prompts: list[list[int]], settings: DistillationSection, eos: int, pad: int
) -> list[TeacherAnswer]:
    teacher.eval()
    answers = []
    for prompt in tqdm(prompts, desc="teacher answers"):
        ids = torch.tensor([prompt])
        generated = teacher.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=settings.max_new_tokens,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=pad,
        )[0, len(prompt) :].tolist()
        if not generated:
            continue
        example = TokenizedExample(input_ids=prompt + generated, answer_start=len(prompt))
        logits, _ = answer_logits(teacher, collate([example], pad))
        top = logits[0, -len(generated) :].topk(settings.top_k, dim=-1)
        answers.append(TeacherAnswer(example, top.values.half(), top.indices.int()))
    return answers


def answers_key(teacher_dir: Path, prompts: list[list[int]], settings: DistillationSection) -> str:
    """Changes whenever the teacher files, the prompts or the generation settings change."""
    files = sorted(
        (path.name, path.stat().st_size, path.stat().st_mtime_ns)
        for path in teacher_dir.iterdir()
        if path.is_file()
    )
    made_of = {
        "teacher": files,
        "prompts": prompts,
        "max_new_tokens": settings.max_new_tokens,
        "top_k": settings.top_k,
    }
    return hashlib.sha256(json.dumps(made_of).encode()).hexdigest()


def save_answers(path: Path, key: str, answers: list[TeacherAnswer]) -> None:
    rows = [
        {
            "input_ids": a.example.input_ids,
            "answer_start": a.example.answer_start,
            "values": a.values,
            "indices": a.indices,
        }
        for a in answers
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save({"key": key, "answers": rows}, partial)
    partial.replace(path)  # a killed run never leaves a half-written file under the real name


def load_answers(path: Path, key: str) -> list[TeacherAnswer] | None:
    """The stored answers if they were made from exactly this teacher, prompts and settings."""
    if not path.is_file():
        return None
    stored = torch.load(path, weights_only=True)
    if stored.get("key") != key:
        tqdm.write(f"{path} was made from another teacher or settings; generating again")
        return None
    tqdm.write(f"reusing {len(stored['answers'])} teacher answers from {path}")
    return [
        TeacherAnswer(
            TokenizedExample(input_ids=row["input_ids"], answer_start=row["answer_start"]),
            row["values"],
            row["indices"],
        )
        for row in stored["answers"]
    ]
