"""Domain types that more than one service speaks: one definition each.

A passage filter travels from the caller through the orchestrator to the retriever; a
generation ends with one outcome that inference produces and the orchestrator reports. Both
sides use these types, converted to and from the wire only in `raildebug.contracts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class FinishReason(StrEnum):
    """Why a generation stopped."""

    LENGTH = "length"
    STOP = "stop"
    EOS = "eos"
    CANCELLED = "cancelled"
    DEADLINE = "deadline"  # caller out of time: ends the stream with DeadlineExceeded instead
    ERROR = "error"

    @property
    def completed(self) -> bool:
        """The model stopped on its own terms: the text is whole and its KV cells reusable."""
        return self in (FinishReason.LENGTH, FinishReason.STOP, FinishReason.EOS)


@dataclass(frozen=True)
class PassageFilter:
    """Restricts candidates before ranking; empty fields do not filter."""

    kinds: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    source_prefix: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GenerationOutcome:
    """The last event of every generation: why it stopped, token usage and timings."""

    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int
    queue_ms: float
    time_to_first_token_ms: float
    prefill_ms: float
    decode_ms: float
    total_ms: float
    model: str
    error: str = ""
    # prompt-lookup speculation: tokens drafted and verified, and how many the sampler kept
    drafted_tokens: int = 0
    accepted_draft_tokens: int = 0
