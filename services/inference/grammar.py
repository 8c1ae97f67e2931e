"""Checks on output constraints before llama.cpp sees them: GBNF grammars and JSON schemas.

llama.cpp parses a grammar recursively (about 450 bytes of stack per nested group, so a few
ten thousand nested parentheses overflow a thread's stack and kill the process), aborts the
process when sampling reaches a state the grammar leaves no way out of, and llama-cpp-python's
schema converter expands repetition counts into text (`"minLength": 100000000` builds a string
of that many rules) and fails with assertion errors, KeyError or TypeError on schemas it does
not support. Everything here runs in the caller's thread and raises InvalidRequest with the
reason; what can only be found while sampling is contained by services.inference.sampling.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from llama_cpp.llama_grammar import json_schema_to_gbnf

from raildebug.errors import InvalidRequest, clip

MAX_GRAMMAR_CHARS = 64 * 1024  # grammar and json_schema as sent
MAX_GRAMMAR_NESTING = 2048  # nested ( ) groups, also in a grammar converted from a schema
MAX_GRAMMAR_REPETITION = 2000  # {m,n} counts; llama.cpp's own threshold
MAX_CONVERTED_GRAMMAR_CHARS = 1024 * 1024
MAX_SCHEMA_DEPTH = 64  # nested objects / arrays of a json_schema
MAX_SCHEMA_COUNT = 1024  # minLength, maxLength, minItems, maxItems, min/maxProperties
MAX_PATTERN_REPETITION_PRODUCT = 65536  # product of the {m,n} counts of one schema pattern

_MAX_CODE_POINT = 0x10FFFF
_SCHEMA_COUNT_KEYS = (
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
)
_QUANTIFIER = re.compile(r"\{\s*(\d+)\s*(?:,\s*(\d*)\s*)?\}")
_SIMPLE_ESCAPES = {"t": 9, "r": 13, "n": 10, "\\": 92, '"': 34, "[": 91, "]": 93}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}


class _Scanner:
    """Walks GBNF text the way llama.cpp's parser tokenizes it (comments, literals, classes)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def char(self) -> int:
        """One (possibly escaped) character of a literal or class, as a code point."""
        text, pos = self.text, self.pos
        if text[pos] != "\\":
            self.pos += 1
            return ord(text[pos])
        escape = text[pos + 1 : pos + 2]
        if escape in _SIMPLE_ESCAPES:
            self.pos += 2
            return _SIMPLE_ESCAPES[escape]
        width = _HEX_ESCAPES.get(escape)
        if width is None:
            raise InvalidRequest(f"grammar has an unknown escape {clip(text[pos : pos + 2])}")
        digits = re.match(r"[0-9a-fA-F]*", text[pos + 2 : pos + 2 + width])
        value = int(digits.group(0), 16) if digits and digits.group(0) else 0
        self.pos += 2 + (len(digits.group(0)) if digits else 0)
        return value

    def literal(self) -> list[int]:
        self.pos += 1  # opening quote
        chars = []
        while self.pos < len(self.text) and self.text[self.pos] != '"':
            chars.append(self.char())
        self.pos += 1
        return chars

    def char_class(self) -> tuple[bool, list[tuple[int, int]], str]:
        start = self.pos
        self.pos += 1
        negated = self.text[self.pos : self.pos + 1] == "^"
        self.pos += negated
        ranges = []
        text = self.text
        while self.pos < len(text) and text[self.pos] != "]":
            low = self.char()
            high = low
            if text[self.pos : self.pos + 1] == "-" and text[self.pos + 1 : self.pos + 2] not in (
                "]",
                "",
            ):
                self.pos += 1
                high = self.char()
            ranges.append((low, high))
        self.pos += 1
        return negated, ranges, text[start : self.pos]


def check_grammar(grammar: str, what: str = "grammar") -> None:
    """Reject GBNF that would overflow llama.cpp's parser or can never produce a character."""
    scanner = _Scanner(grammar)
    text = grammar
    depth = deepest = 0
    try:
        while scanner.pos < len(text):
            c = text[scanner.pos]
            if c == "#":
                end = text.find("\n", scanner.pos)
                scanner.pos = len(text) if end < 0 else end
            elif c == '"':
                if 0 in scanner.literal():
                    raise InvalidRequest(
                        f"{what} has a literal with a NUL character, which no token can "
                        "produce; the output could never match it"
                    )
            elif c == "[":
                negated, ranges, source = scanner.char_class()
                _check_class(what, negated, ranges, source)
            elif c == "(":
                depth += 1
                deepest = max(deepest, depth)
                scanner.pos += 1
            elif c == ")":
                depth -= 1
                scanner.pos += 1
            elif c == "{":
                _check_repetition(what, text, scanner.pos)
                scanner.pos += 1
            else:
                scanner.pos += 1
    except IndexError:  # an unterminated escape at the very end: llama.cpp reports it
        pass
    if deepest > MAX_GRAMMAR_NESTING:
        raise InvalidRequest(
            f"{what} nests groups {deepest} deep; the limit is {MAX_GRAMMAR_NESTING}: flatten "
            "it into named rules (for a json_schema: lower maxLength / maxItems)"
        )


def _check_class(what: str, negated: bool, ranges: list[tuple[int, int]], source: str) -> None:
    for low, high in ranges:
        if low > high:
            raise InvalidRequest(
                f"{what} has an empty character range in {clip(source, 60)}: its start "
                f"U+{low:04X} is after its end U+{high:04X}"
            )
    if not ranges:
        return
    if negated:  # matches nothing when the ranges cover every character but NUL
        reach = 0
        for low, high in sorted(ranges):
            if max(low, 1) > reach + 1:
                break
            reach = max(reach, high)
        matches_something = reach < _MAX_CODE_POINT
    else:  # NUL alone is never produced: a token piece starting with NUL is always rejected
        matches_something = any(high >= 1 for _, high in ranges)
    if not matches_something:
        raise InvalidRequest(
            f"{what} has a character class {clip(source, 60)} that matches no character a "
            "token can produce, so the output could never continue"
        )


def _check_repetition(what: str, text: str, pos: int) -> None:
    match = _QUANTIFIER.match(text, pos)
    if match is None:
        return
    for number in match.groups():
        if number and int(number) > MAX_GRAMMAR_REPETITION:
            raise InvalidRequest(
                f"{what} repeats {clip(match.group(0), 40)}: repetition counts are limited to "
                f"{MAX_GRAMMAR_REPETITION}"
            )


def schema_to_grammar(json_schema: str) -> str:
    """The GBNF of a JSON schema, or InvalidRequest saying what is unsupported or too large."""
    try:
        schema = json.loads(json_schema)
    except RecursionError:
        raise InvalidRequest(f"json_schema nests deeper than {MAX_SCHEMA_DEPTH} levels") from None
    except ValueError as error:
        raise InvalidRequest(f"json_schema is not valid JSON: {clip(str(error), 120)}") from None
    if not isinstance(schema, dict):
        raise InvalidRequest('json_schema must be a JSON object, e.g. {"type": "object"}')
    _check_schema(schema, 0)
    try:
        grammar = str(json_schema_to_gbnf(json_schema))
    except RecursionError:
        raise InvalidRequest(
            "json_schema is too large or too deeply nested to convert to a grammar: use fewer "
            "properties, alternatives or nested groups"
        ) from None
    except Exception as error:  # the converter asserts, or fails with KeyError / TypeError ...
        raise InvalidRequest(
            "json_schema uses something the grammar converter does not support "
            f"({_converter_reason(error)}); supported: type, properties, required, items, "
            "prefixItems, enum, const, anyOf/oneOf/allOf, local $ref (#/$defs/...), string "
            "formats and ^...$ patterns, min/max lengths and items"
        ) from None
    if len(grammar) > MAX_CONVERTED_GRAMMAR_CHARS:
        raise InvalidRequest(
            f"json_schema becomes a grammar of {len(grammar)} characters; the limit is "
            f"{MAX_CONVERTED_GRAMMAR_CHARS}: lower its repetition counts"
        )
    check_grammar(grammar, "the grammar of json_schema")
    return grammar


def _converter_reason(error: Exception) -> str:
    message = str(error)
    if isinstance(error, KeyError):
        message = f"missing {message}"
    return clip(f"{type(error).__name__}: {message}" if message else type(error).__name__, 160)


def _check_schema(node: Any, depth: int) -> None:
    """Bounds the converter needs and does not check: depth, counts, pattern repetitions."""
    if depth > MAX_SCHEMA_DEPTH:
        raise InvalidRequest(f"json_schema nests deeper than {MAX_SCHEMA_DEPTH} levels")
    if isinstance(node, list):
        for item in node:
            _check_schema(item, depth + 1)
        return
    if not isinstance(node, dict):
        return
    for key in _SCHEMA_COUNT_KEYS:
        value = node.get(key)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value != int(value)
            or not 0 <= value <= MAX_SCHEMA_COUNT
        ):
            raise InvalidRequest(
                f"json_schema {key} must be an integer from 0 to {MAX_SCHEMA_COUNT}, got "
                f"{clip(value, 40)}"
            )
    pattern = node.get("pattern")
    if isinstance(pattern, str):
        _check_pattern(pattern)
    for value in node.values():
        if isinstance(value, dict | list):
            _check_schema(value, depth + 1)


def _check_pattern(pattern: str) -> None:
    product = 1
    for match in _QUANTIFIER.finditer(pattern):
        low, high = match.group(1), match.group(2)
        bound = max(int(low), int(high) if high else 0)
        if bound > MAX_GRAMMAR_REPETITION:
            raise InvalidRequest(
                f"json_schema pattern repeats {clip(match.group(0), 40)}: repetition counts "
                f"are limited to {MAX_GRAMMAR_REPETITION}"
            )
        product *= max(bound, 1)
        if product > MAX_PATTERN_REPETITION_PRODUCT:
            raise InvalidRequest(
                f"json_schema pattern {clip(pattern, 60)} repeats too much (the product of its "
                f"repetition counts exceeds {MAX_PATTERN_REPETITION_PRODUCT})"
            )
