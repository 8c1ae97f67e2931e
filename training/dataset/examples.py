"""One supervised example: what the orchestrator would have put in the prompt, and the answer."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from raildebug.errors import InvalidRequest
from services.orchestrator.models import ContextPassage, DebugQuestion


class Passage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    line_start: int = Field(ge=0)
    line_end: int = Field(ge=0)
    title: str = ""
    kind: str = "doc"
    text: str = Field(min_length=1)


class SFTExample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    code_snippet: str = ""
    error_log: str = ""
    passages: list[Passage] = Field(default_factory=list)
    answer: str = Field(min_length=1, description="Continues the template's final 'Cause:'.")
    origin: str = "corpus"  # "corpus" | "feedback"

    def debug_question(self) -> DebugQuestion:
        return DebugQuestion(
            question=self.question, code_snippet=self.code_snippet, error_log=self.error_log
        )

    def context_passages(self) -> list[ContextPassage]:
        return [
            ContextPassage(
                id=f"{p.source}:{p.line_start}",
                text=p.text,
                source=p.source,
                line_start=p.line_start,
                line_end=p.line_end,
                title=p.title,
                kind=p.kind,
                score=1.0,
            )
            for p in self.passages
        ]


def read_examples(path: Path) -> list[SFTExample]:
    """Errors name the file and line, so a hand-edited dataset is easy to fix."""
    examples: list[SFTExample] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                examples.append(SFTExample.model_validate(json.loads(line)))
            except (json.JSONDecodeError, ValidationError) as error:
                raise InvalidRequest(f"{path}:{number}: not a valid SFT example: {error}") from None
    if not examples:
        raise InvalidRequest(f"{path} holds no SFT examples")
    return examples


def write_examples(path: Path, examples: Iterable[SFTExample]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for example in examples:
            out.write(example.model_dump_json() + "\n")
            count += 1
    return count
