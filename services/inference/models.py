"""Plain data types of the inference core."""

from __future__ import annotations

from dataclasses import dataclass, field

from raildebug.domain import GenerationOutcome
from raildebug.errors import DeadlineExceeded

MAX_NEW_TOKENS = 4096
MAX_STOP_SEQUENCES = 8
MAX_STOP_LENGTH = 64


@dataclass(frozen=True)
class TokenCounts:
    """Tokens each text takes; `estimated` when the backend cannot tokenize (counts are then a
    conservative guess from the length, so a budget packed with them still holds)."""

    counts: tuple[int, ...]
    estimated: bool = False


@dataclass(frozen=True)
class ChatTurn:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class Sampling:
    """Sampling controls; None means the engine default."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repeat_penalty: float | None = None
    seed: int | None = None


@dataclass(frozen=True)
class GenerationRequest:
    """Either `prompt` or `chat` is set. `max_tokens` 0 means the engine default.

    `grammar` (GBNF, start rule "root") or `json_schema` constrain the output; at most one.
    """

    prompt: str | None = None
    chat: tuple[ChatTurn, ...] | None = None
    max_tokens: int = 0
    sampling: Sampling = field(default_factory=Sampling)
    stop: tuple[str, ...] = ()
    request_id: str = ""
    grammar: str = ""
    json_schema: str = ""


@dataclass(frozen=True)
class TextDelta:
    """Newly generated text: whole UTF-8 characters, never part of a stop sequence."""

    text: str


GenerationEvent = TextDelta | GenerationOutcome


def deadline_exceeded(outcome: GenerationOutcome, max_tokens: int) -> DeadlineExceeded:
    """The error a stream ends with when the caller's deadline passed mid-generation."""
    return DeadlineExceeded(
        f"the deadline passed after {outcome.completion_tokens} of {max_tokens} tokens "
        f"({outcome.total_ms:.0f} ms); allow more time or ask for fewer tokens"
    )


@dataclass(frozen=True)
class ModelInfo:
    model: str
    architecture: str
    quantization: str
    context_length: int
    trained_context_length: int
    slots: int
    busy_slots: int
    queue_depth: int
    n_gpu_layers_requested: int
    n_gpu_layers_offloaded: int
    n_layers: int
    n_threads: int
    model_path: str
    backend: str = "gguf"
