"""Durable record of answered requests and the feedback given on them (SQLite)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from opentelemetry import trace

from raildebug.errors import InvalidRequest, NotFound, clip
from raildebug.limits import MAX_CLIENT_ID_CHARS, MAX_REQUEST_ID_CHARS, check_identifier
from raildebug.observability import conventions as conv
from raildebug.observability.tracing import get_tracer
from services.orchestrator.models import MAX_COMMENT_CHARS, AnsweredRequest, FeedbackEntry

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


# Columns added after the first release; existing files get them on open.
_ADDED_COLUMNS = {
    "prompt_variant": "TEXT NOT NULL DEFAULT ''",
    "context": "TEXT NOT NULL DEFAULT '[]'",  # passages as the prompt saw them, with text
    "cache_hit": "INTEGER NOT NULL DEFAULT 0",
}


class FeedbackLog:
    def __init__(self, path: Path, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._tracer = get_tracer(__name__, tracer_provider)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(answers)")}
        for column, declaration in _ADDED_COLUMNS.items():
            if column not in present:
                self._db.execute(f"ALTER TABLE answers ADD COLUMN {column} {declaration}")
        self._lock = threading.Lock()

    def record_answer(self, answered: AnsweredRequest) -> None:
        q, s = answered.question, answered.summary
        context = [
            {
                "id": p.id,
                "label": p.label,
                "source": p.source,
                "line_start": p.line_start,
                "line_end": p.line_end,
                "title": p.title,
                "kind": p.kind,
                "text": p.text,
            }
            for p in answered.passages
        ]
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO answers (request_id, created_at, client_id, session_id, "
                "question, code_snippet, error_log, passage_ids, answer, prompt_version, model, "
                "degraded, prompt_variant, context, cache_hit) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
                    s.prompt_variant,
                    json.dumps(context),
                    int(s.cache_hit),
                ),
            )

    def record_feedback(self, entry: FeedbackEntry) -> None:
        with self._tracer.start_as_current_span(
            "feedback",
            attributes={
                conv.ATTR_REQUEST_ID: entry.request_id[:MAX_REQUEST_ID_CHARS],
                conv.ATTR_FEEDBACK_SCORE: entry.score,
            },
        ) as span:
            if not entry.request_id:
                raise InvalidRequest("request_id is required: use the one from the Debug summary")
            check_identifier("request_id", entry.request_id, MAX_REQUEST_ID_CHARS)
            check_identifier("client_id", entry.client_id, MAX_CLIENT_ID_CHARS)
            if not -1.0 <= entry.score <= 1.0:
                raise InvalidRequest(f"score must be in [-1, 1], got {entry.score}")
            if len(entry.comment) > MAX_COMMENT_CHARS:
                raise InvalidRequest(f"comment is longer than {MAX_COMMENT_CHARS} characters")
            with self._lock:
                known = self._db.execute(
                    "SELECT prompt_version, prompt_variant, model FROM answers "
                    "WHERE request_id = ?",
                    (entry.request_id,),
                ).fetchone()
                if known is None:
                    raise NotFound(f"no answered request with id {clip(entry.request_id)}")
                self._db.execute(
                    "INSERT INTO feedback (request_id, created_at, score, comment, client_id) "
                    "VALUES (?,?,?,?,?)",
                    (entry.request_id, time.time(), entry.score, entry.comment, entry.client_id),
                )
            span.set_attributes(
                {
                    conv.ATTR_PROMPT_VERSION: known[0],
                    conv.ATTR_PROMPT_VARIANT: known[1],
                    conv.ATTR_GEN_AI_RESPONSE_MODEL: known[2],
                }
            )

    def feedback_for(self, request_id: str) -> list[FeedbackEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT request_id, score, comment, client_id FROM feedback "
                "WHERE request_id = ? ORDER BY id",
                (request_id,),
            ).fetchall()
        return [FeedbackEntry(*row) for row in rows]

    def answered(self, request_id: str) -> dict[str, Any] | None:
        """The stored answer row (for tracing the feedback and for support)."""
        with self._lock:
            cursor = self._db.execute("SELECT * FROM answers WHERE request_id = ?", (request_id,))
            row = cursor.fetchone()
            names = [d[0] for d in cursor.description]
        return None if row is None else dict(zip(names, row, strict=True))

    def export_rows(self, min_score: float | None = None) -> Iterator[dict[str, Any]]:
        """One training example per answer with feedback: the inputs, the context the model saw,
        the answer, its mean score and what produced it. `min_score` keeps well-rated ones."""
        query = (
            "SELECT a.request_id, a.created_at, a.question, a.code_snippet, a.error_log, "
            "a.context, a.answer, AVG(f.score), COUNT(f.id), json_group_array(f.comment), "
            "a.prompt_version, a.prompt_variant, a.model, a.degraded, a.cache_hit "
            "FROM answers a JOIN feedback f ON f.request_id = a.request_id "
            "GROUP BY a.request_id"
        )
        params: tuple[float, ...] = ()
        if min_score is not None:
            query += " HAVING AVG(f.score) >= ?"
            params = (min_score,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY a.created_at", params).fetchall()
        for row in rows:
            yield {
                "request_id": row[0],
                "created_at": row[1],
                "question": row[2],
                "code_snippet": row[3],
                "error_log": row[4],
                "context": json.loads(row[5]),
                "answer": row[6],
                "score": row[7],
                "feedback_count": row[8],
                "comments": [c for c in json.loads(row[9]) if c],
                "prompt_version": row[10],
                "prompt_variant": row[11],
                "model": row[12],
                "degraded": bool(row[13]),
                "cache_hit": bool(row[14]),
            }

    def close(self) -> None:
        self._db.close()
