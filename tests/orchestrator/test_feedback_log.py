"""Feedback log: answers keep their prompt variant and context; export builds the dataset."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from apps.cli.main import main
from raildebug.domain import FinishReason, GenerationOutcome
from services.orchestrator.feedback import FeedbackLog
from services.orchestrator.models import (
    AnsweredRequest,
    ContextPassage,
    DebugQuestion,
    DebugSummary,
    FeedbackEntry,
)

STATS = GenerationOutcome(
    FinishReason.STOP, 400, 12, 0, 1.0, 90.0, 80.0, 300.0, 400.0, "Gemma 3 270m"
)
PASSAGE = ContextPassage(
    "p1", "E73-B: lock timeout", "docs/errors-points.md", 3, 9, "E73-B", "doc", 0.8, "[1]"
)


def _answered(request_id: str, variant: str) -> AnsweredRequest:
    summary = DebugSummary(
        request_id, STATS, 500.0, 100.0, "rail_fix@2", ["p1"], False, "", prompt_variant=variant
    )
    question = DebugQuestion(question=f"Why E73-B? ({request_id})", error_log="E73-B P12")
    return AnsweredRequest(question, [PASSAGE], "Cause: lock timeout [1].", summary)


def test_export_has_what_fine_tuning_needs_and_filters_by_score(tmp_path: Path) -> None:
    log = FeedbackLog(tmp_path / "feedback.sqlite3")
    log.record_answer(_answered("good", "staging"))
    log.record_answer(_answered("bad", "production"))
    log.record_answer(_answered("unrated", "production"))
    log.record_feedback(FeedbackEntry("good", 1.0, "fixed it"))
    log.record_feedback(FeedbackEntry("good", 0.5))
    log.record_feedback(FeedbackEntry("bad", -1.0, "wrong point"))

    rows = list(log.export_rows())
    assert [r["request_id"] for r in rows] == ["good", "bad"]
    good = rows[0]
    assert good["score"] == 0.75 and good["feedback_count"] == 2
    assert good["comments"] == ["fixed it"]
    assert good["question"] == "Why E73-B? (good)" and good["error_log"] == "E73-B P12"
    assert good["context"][0]["text"] == "E73-B: lock timeout"
    assert good["context"][0]["label"] == "[1]"
    assert good["answer"] == "Cause: lock timeout [1]."
    assert (good["prompt_version"], good["prompt_variant"], good["model"]) == (
        "rail_fix@2",
        "staging",
        "Gemma 3 270m",
    )
    assert [r["request_id"] for r in log.export_rows(min_score=0.5)] == ["good"]
    log.close()

    out = tmp_path / "sft.jsonl"
    db = str(tmp_path / "feedback.sqlite3")
    assert main(["feedback", "export", "--db", db, "--out", str(out), "--min-score", "0.5"]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["prompt_variant"] == "staging"


def test_an_existing_database_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE answers (request_id TEXT PRIMARY KEY, created_at REAL NOT NULL, "
        "client_id TEXT NOT NULL, session_id TEXT NOT NULL, question TEXT NOT NULL, "
        "code_snippet TEXT NOT NULL, error_log TEXT NOT NULL, passage_ids TEXT NOT NULL, "
        "answer TEXT NOT NULL, prompt_version TEXT NOT NULL, model TEXT NOT NULL, "
        "degraded INTEGER NOT NULL);"
        "INSERT INTO answers VALUES ('r0', 1, 'c', 's', 'q', '', '', '[]', 'a', 'rail_fix@1', "
        "'m', 0);"
    )
    old.commit()
    old.close()
    log = FeedbackLog(path)
    log.record_feedback(FeedbackEntry("r0", 1.0))
    (row,) = log.export_rows()
    assert row["prompt_variant"] == "" and row["context"] == []
    log.record_answer(_answered("new", "production"))
    assert log.answered("new")["prompt_variant"] == "production"  # type: ignore[index]
