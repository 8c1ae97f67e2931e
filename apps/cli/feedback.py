"""`raildebug feedback export`: answers with their feedback as a JSONL fine-tuning dataset.

Each line holds the question, code and log, the context passages the model saw (with text), the
answer, its mean feedback score and comments, and the prompt version/variant and model that
produced it. `--min-score` keeps the well-rated ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from raildebug.settings import OrchestratorSettings
from services.orchestrator.feedback import FeedbackLog


def register(commands: Any) -> None:
    parser = commands.add_parser("feedback", help="export recorded feedback")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="write answers with feedback as JSONL")
    export.add_argument("--db", type=Path, help="feedback SQLite file (default: settings)")
    export.add_argument("--out", type=Path, help="output file (default: stdout)")
    export.add_argument(
        "--min-score",
        type=float,
        help="only answers whose mean score is at least this (-1..1), e.g. 0.5",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    db = args.db or OrchestratorSettings().feedback_db
    if not db.is_file():
        print(f"error: no feedback database at {db}", file=sys.stderr)
        return 1
    log = FeedbackLog(db)
    out = args.out.open("w", encoding="utf-8") if args.out else sys.stdout
    count = 0
    try:
        for row in log.export_rows(min_score=args.min_score):
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    finally:
        log.close()
        if args.out:
            out.close()
    print(f"exported {count} answers", file=sys.stderr)
    return 0
