"""Analyzer backend over any OpenAI-compatible chat API (OpenAI, vLLM, llama.cpp server, ...).

The endpoint is RAILDEBUG_OPENAI_* (OpenAISettings), shared with inference's `openai` backend;
client and error mapping come from raildebug/openai_endpoint.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import openai

from raildebug.domain import FinishReason, GenerationOutcome
from raildebug.openai_endpoint import (
    domain_error,
    endpoint_name,
    finish_reason,
    open_client,
    resolve_model,
)
from raildebug.settings import OpenAISettings
from services.orchestrator.models import AnalysisInput

_MAX_STOP_SEQUENCES = 4  # the OpenAI API refuses more


class OpenAIChatAnalyzer:
    """Sends the rendered prompt as one user message and streams the reply."""

    name = "openai"

    def __init__(self, client: openai.OpenAI, endpoint: OpenAISettings) -> None:
        self._client = client
        self._endpoint = endpoint
        self._where = endpoint_name(endpoint)
        self._model = endpoint.model  # empty until the endpoint has named its first model

    @classmethod
    def connect(cls, endpoint: OpenAISettings) -> OpenAIChatAnalyzer:
        return cls(open_client(endpoint), endpoint)

    def model(self, timeout_s: float) -> str:
        if not self._model:
            client = self._client.with_options(timeout=min(timeout_s, self._endpoint.timeout_s))
            self._model = resolve_model(client, self._endpoint)
        return self._model

    def analyze(
        self,
        work: AnalysisInput,
        *,
        timeout_s: float,
        request_id: str,
        is_cancelled: Callable[[], bool],
    ) -> Iterator[str | GenerationOutcome]:
        started = time.monotonic()
        first_at: float | None = None
        finish, model = FinishReason.ERROR, self.model(timeout_s)
        usage: Any = None
        try:
            stream = self._client.chat.completions.create(
                model=model,
                messages=_messages(work),
                max_tokens=work.max_tokens,
                stop=list(work.stop[:_MAX_STOP_SEQUENCES]) or None,
                stream=True,
                stream_options={"include_usage": True},
                timeout=min(timeout_s, self._endpoint.timeout_s),
                extra_headers={"x-request-id": request_id},
            )
            with stream:
                for chunk in stream:
                    if is_cancelled():
                        finish = FinishReason.CANCELLED
                        break
                    model = chunk.model or model
                    usage = chunk.usage or usage
                    for choice in chunk.choices:
                        text = choice.delta.content if choice.delta else None
                        if text:
                            first_at = first_at or time.monotonic()
                            yield text
                        if choice.finish_reason:
                            finish = finish_reason(
                                choice.finish_reason, stop_strings_given=bool(work.stop)
                            )
        except openai.OpenAIError as error:
            raise domain_error(error, self._where) from error
        ended = time.monotonic()
        ttft_ms = ((first_at or ended) - started) * 1000
        yield GenerationOutcome(
            finish_reason=finish,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            cached_prompt_tokens=0,
            queue_ms=0.0,
            time_to_first_token_ms=ttft_ms,
            prefill_ms=ttft_ms,
            decode_ms=(ended - (first_at or ended)) * 1000,
            total_ms=(ended - started) * 1000,
            model=model,
        )


def _messages(work: AnalysisInput) -> list[Any]:
    """A chat template's turns as they are; a completion template as one user message."""
    turns = work.chat or (("user", work.prompt),)
    return [{"role": role, "content": content} for role, content in turns]
