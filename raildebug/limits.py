"""Bounds on the identifiers and labels every service accepts, and the checks that enforce them.

A request field that is logged, stored, used as a key or put into SQL has a length limit and a
character rule, so that no caller can grow a log line, a database row or a rate-limit key
without bound, or smuggle NUL and control characters into them. The proto comments and the
README (Security, "Input validation") state the same numbers.
"""

from __future__ import annotations

from raildebug.domain import PassageFilter
from raildebug.errors import InvalidRequest, clip

# Identifiers: printable, no whitespace (they end up in logs, keys and span attributes).
MAX_CLIENT_ID_CHARS = 128
MAX_SESSION_ID_CHARS = 128
MAX_REQUEST_ID_CHARS = 128
# Source paths and labels: printable (spaces allowed), no control characters.
MAX_SOURCE_CHARS = 1024
MAX_TITLE_CHARS = 1024
MAX_LABEL_CHARS = 64  # kind, language
MAX_METADATA_ENTRIES = 32
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 256
MAX_FILTER_VALUES = 16  # kinds, languages


def _has_control(value: str) -> bool:
    return not value.replace(" ", "").isprintable()


def check_identifier(field: str, value: str, max_chars: int) -> None:
    """An optional identifier: empty, or 1..max_chars printable characters without spaces."""
    if len(value) > max_chars:
        raise InvalidRequest(
            f"{field} is {len(value)} characters; the limit is {max_chars}: send a short id"
        )
    if value and (not value.isprintable() or any(c.isspace() for c in value)):
        raise InvalidRequest(
            f"{field} {clip(value)} contains whitespace or control characters; ids are "
            "printable characters without spaces"
        )


def check_label(field: str, value: str, max_chars: int) -> None:
    """Free text on one line: at most max_chars characters, no control characters (incl. NUL)."""
    if len(value) > max_chars:
        raise InvalidRequest(f"{field} is {len(value)} characters; the limit is {max_chars}")
    if _has_control(value):
        raise InvalidRequest(
            f"{field} {clip(value)} contains control characters (NUL, newline, ...); "
            "send printable text"
        )


def check_text(field: str, value: str, max_chars: int) -> None:
    """Text that may span lines: at most max_chars characters and no NUL."""
    if len(value) > max_chars:
        raise InvalidRequest(f"{field} is {len(value)} characters; the limit is {max_chars}")
    if "\0" in value:
        raise InvalidRequest(f"{field} contains NUL characters; send text, not binary data")


def check_metadata(field: str, metadata: dict[str, str]) -> None:
    """User metadata: at most MAX_METADATA_ENTRIES pairs of bounded, printable strings."""
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise InvalidRequest(
            f"{field} has {len(metadata)} entries; the limit is {MAX_METADATA_ENTRIES}"
        )
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidRequest(f"{field} keys and values must be strings, got {clip(key)}")
        if not key:
            raise InvalidRequest(f"{field} has an empty key")
        check_identifier(f"{field} key", key, MAX_METADATA_KEY_CHARS)
        check_label(f"{field}[{clip(key, 40)}]", value, MAX_METADATA_VALUE_CHARS)


def check_passage_filter(passage_filter: PassageFilter) -> None:
    """Bounds of a filter's values (which keys and kinds exist is the retriever's to say)."""
    for field, values in (
        ("filter.kinds", passage_filter.kinds),
        ("filter.languages", passage_filter.languages),
    ):
        if len(values) > MAX_FILTER_VALUES:
            raise InvalidRequest(
                f"{field} has {len(values)} values; the limit is {MAX_FILTER_VALUES}"
            )
        for value in values:
            check_label(field, value, MAX_LABEL_CHARS)
    check_label("filter.source_prefix", passage_filter.source_prefix, MAX_SOURCE_CHARS)
    check_metadata("filter.metadata", passage_filter.metadata)
