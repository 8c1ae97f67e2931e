"""Packing retrieved passages into the prompt's token budget.

Prefill dominates time to first token on CPU, so the passages block is bounded in the model's
own tokens, not in characters (a character budget lets code and identifier-dense text, which
take more tokens per character, overrun it). Passages go in by rank; the one that crosses the
budget is cut at a line or sentence boundary, so the model never reads half a word or half a
statement, and nothing after it is added: a lower-ranked passage never displaces a better one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import replace

from raildebug.errors import RailDebugError
from raildebug.observability.logging import get_logger
from services.orchestrator.models import ContextPassage
from services.orchestrator.ports import TokenCounter

log = get_logger(__name__)

# A sentence end followed by whitespace; long prose lines are cut there.
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
_LONG_LINE_CHARS = 240
# The smallest useful piece of a passage: below this the rest of the budget is left unused.
MIN_PASSAGE_TOKENS = 12


class LengthEstimate:
    """Counts from the text length for backends that cannot tokenize (OpenAI endpoints, DSPy):
    on the high side, so a budget packed with them still holds with a real tokenizer."""

    CHARS_PER_TOKEN = 3.0

    def count(self, texts: Sequence[str], timeout_s: float) -> list[int]:
        return [math.ceil(len(text) / self.CHARS_PER_TOKEN) for text in texts]


def split_units(text: str) -> list[str]:
    """Lines (with their newline); prose lines longer than a few sentences split at sentence
    ends. Joining the units gives back `text` exactly."""
    units: list[str] = []
    for line in text.splitlines(keepends=True):
        if len(line) <= _LONG_LINE_CHARS:
            units.append(line)
            continue
        start = 0
        for match in _SENTENCE_END.finditer(line):
            units.append(line[start : match.end()])
            start = match.end()
        if start < len(line):
            units.append(line[start:])
    return units


def passage_header(passage: ContextPassage, label: str) -> str:
    """What a template typically prints around a passage (label, source, lines, quotes): its
    tokens are charged to the budget too."""
    title = f" ({passage.title})" if passage.title else ""
    return (
        f"{label} {passage.source} lines {passage.line_start}-{passage.line_end}{title}\n"
        "<<<\n\n>>>\n"
    )


def pack_passages(
    passages: Sequence[ContextPassage],
    budget_tokens: int,
    counter: TokenCounter,
    timeout_s: float,
) -> list[ContextPassage]:
    """The passages, labelled [1].., that fit `budget_tokens` in rank order (see the module
    docstring). One counting call covers every unit of every passage."""
    units = [split_units(p.text) for p in passages]
    headers = [passage_header(p, f"[{n}]") for n, p in enumerate(passages, 1)]
    flat = headers + [unit for piece in units for unit in piece]
    counts = _counted(flat, counter, timeout_s)
    header_counts, unit_counts = counts[: len(headers)], counts[len(headers) :]
    packed: list[ContextPassage] = []
    remaining = budget_tokens
    offset = 0
    for passage, pieces, header_cost in zip(passages, units, header_counts, strict=True):
        costs = unit_counts[offset : offset + len(pieces)]
        offset += len(pieces)
        room = remaining - header_cost
        if room < MIN_PASSAGE_TOKENS:
            break
        taken, spent = 0, 0
        while taken < len(pieces) and spent + costs[taken] <= room:
            spent += costs[taken]
            taken += 1
        if taken == 0:
            break
        text = "".join(pieces[:taken]).rstrip()
        packed.append(replace(passage, text=text, label=f"[{len(packed) + 1}]"))
        remaining -= header_cost + spent
        if taken < len(pieces):
            break
    return packed


def _counted(texts: list[str], counter: TokenCounter, timeout_s: float) -> list[int]:
    """The counter's counts; the length estimate when it fails (the answer then still comes,
    with a budget that holds on the high side)."""
    if not texts:
        return []
    try:
        counts = counter.count(texts, timeout_s)
    except RailDebugError as error:
        log.warning("token count failed; estimating from length", error=str(error)[:300])
        return LengthEstimate().count(texts, timeout_s)
    if len(counts) != len(texts):
        log.warning("token counter returned the wrong number of counts; estimating")
        return LengthEstimate().count(texts, timeout_s)
    return counts
