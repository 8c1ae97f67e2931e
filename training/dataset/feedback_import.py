"""Turns the orchestrator's feedback export into SFT examples: only well-rated answers, only
answers produced with the same prompt template, so imported and written examples agree."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raildebug.errors import InvalidRequest
from training.dataset.examples import Passage, SFTExample


@dataclass
class ImportReport:
    kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def import_feedback(
    path: Path, min_score: float, prompt_template: str
) -> tuple[list[SFTExample], ImportReport]:
    """Rows: question, code_snippet, error_log, passages (or context), answer, score,
    prompt_version. Malformed lines are errors; rows that are merely unsuitable are counted."""
    report = ImportReport()
    examples: list[SFTExample] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise TypeError("not an object")
                score = float(row["score"])
            except (json.JSONDecodeError, TypeError, KeyError, ValueError) as error:
                raise InvalidRequest(
                    f"{path}:{number}: not a feedback export row (need question, answer, score, "
                    f"prompt_version): {error}"
                ) from None
            example = _example(row, score, min_score, prompt_template, report)
            if example is None:
                continue
            if example.id in seen:
                report.skip("duplicate")
                continue
            seen.add(example.id)
            examples.append(example)
            report.kept += 1
    return examples, report


def _example(
    row: dict[str, Any], score: float, min_score: float, template: str, report: ImportReport
) -> SFTExample | None:
    if score < min_score:
        report.skip("score below threshold")
        return None
    if str(row.get("prompt_version", "")) != template:
        report.skip("other prompt template")
        return None
    question = str(row.get("question", "")).strip()
    answer = str(row.get("answer", "")).removeprefix("Cause:").rstrip()
    if not question or not answer.strip():
        report.skip("empty question or answer")
        return None
    passages = [
        Passage(
            source=str(p.get("source", "")),
            line_start=int(p.get("line_start", 0)),
            line_end=int(p.get("line_end", 0)),
            title=str(p.get("title", "")),
            kind=str(p.get("kind", "doc")),
            text=str(p["text"]),
        )
        for p in row.get("passages", row.get("context", [])) or []
        if isinstance(p, dict) and p.get("text")
    ]
    code, log = str(row.get("code_snippet", "")), str(row.get("error_log", ""))
    digest = hashlib.sha256(f"{question}\0{code}\0{log}\0{answer}".encode()).hexdigest()[:12]
    return SFTExample(
        id=f"feedback-{digest}",
        question=question,
        code_snippet=code,
        error_log=log,
        passages=passages,
        answer=answer if answer.startswith((" ", "\n")) else " " + answer,
        origin="feedback",
    )
