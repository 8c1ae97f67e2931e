"""Checks a generation request before any backend spends work on it; fills sampling defaults."""

from __future__ import annotations

import math
from collections.abc import Sequence

from raildebug.errors import InvalidRequest, clip
from raildebug.limits import MAX_REQUEST_ID_CHARS, check_identifier
from services.inference.chat import unknown_roles
from services.inference.grammar import MAX_GRAMMAR_CHARS
from services.inference.models import (
    MAX_NEW_TOKENS,
    MAX_STOP_LENGTH,
    MAX_STOP_SEQUENCES,
    GenerationRequest,
    Sampling,
)

DEFAULT_SAMPLING = Sampling(temperature=0.2, top_p=0.95, top_k=40, repeat_penalty=1.1)
MAX_CHAT_MESSAGES = 256
MAX_COUNT_TEXTS = 1_024
MAX_COUNT_CHARS = 1_000_000


def validate_count(texts: Sequence[str]) -> None:
    """Bounds a CountTokens call so that one request cannot hold the tokenizer for long."""
    if len(texts) > MAX_COUNT_TEXTS:
        raise InvalidRequest(
            f"{len(texts)} texts to count; the limit is {MAX_COUNT_TEXTS}: split the call"
        )
    total = sum(len(text) for text in texts)
    if total > MAX_COUNT_CHARS:
        raise InvalidRequest(
            f"{total} characters to count; the limit is {MAX_COUNT_CHARS}: split the call"
        )


def validate(request: GenerationRequest, max_tokens: int) -> None:
    check_identifier("request_id", request.request_id, MAX_REQUEST_ID_CHARS)
    if request.chat is None and not (request.prompt or "").strip():
        raise InvalidRequest("prompt is empty: send a prompt or chat messages")
    if request.chat is not None:
        if not request.chat:
            raise InvalidRequest("chat has no messages: send at least one user message")
        if len(request.chat) > MAX_CHAT_MESSAGES:
            raise InvalidRequest(
                f"chat has {len(request.chat)} messages; the limit is {MAX_CHAT_MESSAGES}"
            )
        roles = unknown_roles(request.chat)
        if roles:
            raise InvalidRequest(
                f"unknown chat role(s) {clip(roles)}: use system, user or assistant"
            )
    if not 1 <= max_tokens <= MAX_NEW_TOKENS:
        raise InvalidRequest(f"max_tokens must be 1..{MAX_NEW_TOKENS}, got {max_tokens}")
    _validate_sampling(request.sampling)
    if len(request.stop) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(
            f"at most {MAX_STOP_SEQUENCES} stop sequences, got {len(request.stop)}"
        )
    if any(len(s) > MAX_STOP_LENGTH or not s for s in request.stop):
        raise InvalidRequest(f"stop sequences must be 1..{MAX_STOP_LENGTH} characters")
    _validate_constraint(request)


def _validate_sampling(s: Sampling) -> None:
    """Every bound is checked so that NaN (which fails every comparison) and ±Inf fail it."""
    if s.temperature is not None and not 0.0 <= s.temperature <= 2.0:
        raise InvalidRequest(f"temperature must be in [0, 2], got {s.temperature}")
    if s.top_p is not None and not 0.0 < s.top_p <= 1.0:
        raise InvalidRequest(f"top_p must be in (0, 1], got {s.top_p}")
    if s.top_k is not None and s.top_k < 0:
        raise InvalidRequest(f"top_k must be >= 0, got {s.top_k}")
    if s.repeat_penalty is not None and not (
        math.isfinite(s.repeat_penalty) and s.repeat_penalty >= 1.0
    ):
        raise InvalidRequest(
            f"repeat_penalty must be a finite number >= 1 (1 disables), got {s.repeat_penalty}"
        )
    if s.seed is not None and not 0 <= s.seed < 2**32:
        raise InvalidRequest(f"seed must be 0..{2**32 - 1}, got {s.seed}")


def _validate_constraint(request: GenerationRequest) -> None:
    """Sizes only; what a grammar or schema says is checked where it is compiled (grammar.py)."""
    if request.grammar and request.json_schema:
        raise InvalidRequest("send either a grammar or a json_schema, not both")
    if max(len(request.grammar), len(request.json_schema)) > MAX_GRAMMAR_CHARS:
        raise InvalidRequest(f"grammar and json_schema are limited to {MAX_GRAMMAR_CHARS} chars")


def with_defaults(sampling: Sampling) -> Sampling:
    d = DEFAULT_SAMPLING
    return Sampling(
        temperature=d.temperature if sampling.temperature is None else sampling.temperature,
        top_p=d.top_p if sampling.top_p is None else sampling.top_p,
        top_k=d.top_k if sampling.top_k is None else sampling.top_k,
        repeat_penalty=d.repeat_penalty
        if sampling.repeat_penalty is None
        else sampling.repeat_penalty,
        seed=sampling.seed,
    )
