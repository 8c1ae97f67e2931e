"""Structured logging for every RailDebug process (JSON lines on stderr)."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog


def configure_logging(service: str, level: str | None = None, json: bool | None = None) -> None:
    """JSON logs by default (for collectors); RAILDEBUG_LOG_FORMAT=console for humans."""
    level_name = (level or os.environ.get("RAILDEBUG_LOG_LEVEL", "INFO")).upper()
    use_json = json if json is not None else os.environ.get("RAILDEBUG_LOG_FORMAT") != "console"
    logging.basicConfig(level=level_name, stream=sys.stderr, format="%(message)s")
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level_name]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
