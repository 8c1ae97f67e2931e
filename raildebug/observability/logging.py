"""Structured logging for every RailDebug process (JSON lines on stderr)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from raildebug.settings import LogSettings


def configure_logging(service: str, level: str | None = None, json: bool | None = None) -> None:
    """JSON logs by default (for collectors); RAILDEBUG_LOG_FORMAT=console for humans.

    `level` and `json` are what a command chose; RAILDEBUG_LOG_LEVEL / _FORMAT (LogSettings)
    still win when set, so an operator can always turn logging up.
    """
    settings = LogSettings()
    chosen = settings.model_fields_set
    level_name = (settings.level if "level" in chosen or level is None else level).upper()
    use_json = (settings.format == "json") if "format" in chosen or json is None else json
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
