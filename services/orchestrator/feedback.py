"""Durable record of answered requests and the feedback given on them (SQLite)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

from raildebug.errors import InvalidRequest, NotFound
from services.orchestrator.models import MAX_COMMENT_CHARS, FeedbackEntry
from services.orchestrator.pipeline import AnsweredRequest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    request_id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    client_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    question TEXT NOT NULL,
    code_snippet TEXT NOT NULL,
    error_log TEXT NOT NULL,
    passage_ids TEXT NOT NULL,
    answer TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    model TEXT NOT NULL,
    degraded INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL REFERENCES answers(request_id),
    created_at REAL NOT NULL,
    score REAL NOT NULL,
    comment TEXT NOT NULL,
    client_id TEXT NOT NULL
);
"""


class FeedbackLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def record_answer(self, answered: AnsweredRequest) -> None:
        q, s = answered.question, answered.summary
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO answers VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    s.request_id,
                    time.time(),
                    q.client_id,
                    q.session_id,
                    q.question,
                    q.code_snippet,
                    q.error_log,
                    json.dumps([p.id for p in answered.passages]),
                    answered.answer,
                    s.prompt_version,
                    s.generation.model,
                    int(s.degraded),
                ),
            )

    def record_feedback(self, entry: FeedbackEntry) -> None:
        if not entry.request_id:
            raise InvalidRequest("request_id is required: use the one from the Debug summary")
        if not -1.0 <= entry.score <= 1.0:
            raise InvalidRequest(f"score must be in [-1, 1], got {entry.score}")
        if len(entry.comment) > MAX_COMMENT_CHARS:
            raise InvalidRequest(f"comment is longer than {MAX_COMMENT_CHARS} characters")
        with self._lock:
            known = self._db.execute(
                "SELECT 1 FROM answers WHERE request_id = ?", (entry.request_id,)
            ).fetchone()
            if known is None:
                raise NotFound(f"no answered request with id {entry.request_id!r}")
            self._db.execute(
                "INSERT INTO feedback (request_id, created_at, score, comment, client_id) "
                "VALUES (?,?,?,?,?)",
                (entry.request_id, time.time(), entry.score, entry.comment, entry.client_id),
            )

    def feedback_for(self, request_id: str) -> list[FeedbackEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT request_id, score, comment, client_id FROM feedback "
                "WHERE request_id = ? ORDER BY id",
                (request_id,),
            ).fetchall()
        return [FeedbackEntry(*row) for row in rows]

    def close(self) -> None:
        self._db.close()
