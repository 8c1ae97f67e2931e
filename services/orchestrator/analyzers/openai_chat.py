"""Analyzer backend over any OpenAI-compatible chat API (OpenAI, vLLM, llama.cpp server, ...)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import openai

from raildebug.domain import GenerationOutcome
from raildebug.errors import DeadlineExceeded, InvalidRequest, NotReady, Overloaded
from services.orchestrator.models import AnalysisInput

_FINISH = {"stop": "stop", "length": "length", "content_filter": "stop"}
_MAX_STOP_SEQUENCES = 4  # the OpenAI API refuses more


class OpenAIChatAnalyzer:
    """Sends the rendered prompt as one user message and streams the reply."""

    name = "openai"

    def __init__(self, client: openai.OpenAI, model: str) -> None:
        self._client = client
        self._model = model

    @classmethod
    def connect(cls, base_url: str, api_key: str, model: str) -> OpenAIChatAnalyzer:
        client = openai.OpenAI(base_url=base_url or None, api_key=api_key, max_retries=0)
        return cls(client, model)

    def model(self, timeout_s: float) -> str:
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
        finish, model = "error", self._model
        usage: Any = None
        try:
            stream = self._client.chat.completions.create(
                model=self._model,
                messages=[{"role": "user", "content": work.prompt}],
                max_tokens=work.max_tokens,
                stop=list(work.stop[:_MAX_STOP_SEQUENCES]) or None,
                stream=True,
                stream_options={"include_usage": True},
                timeout=timeout_s,
                extra_headers={"x-request-id": request_id},
            )
            with stream:
                for chunk in stream:
                    if is_cancelled():
                        finish = "cancelled"
                        break
                    model = chunk.model or model
                    usage = chunk.usage or usage
                    for choice in chunk.choices:
                        text = choice.delta.content if choice.delta else None
                        if text:
                            first_at = first_at or time.monotonic()
                            yield text
                        if choice.finish_reason:
                            finish = _FINISH.get(choice.finish_reason, choice.finish_reason)
        except openai.APITimeoutError as error:
            raise DeadlineExceeded(f"openai backend timed out: {error}") from error
        except openai.APIConnectionError as error:
            raise NotReady(f"openai backend unreachable: {error}") from error
        except openai.RateLimitError as error:
            raise Overloaded(f"openai backend is rate limiting us: {error}") from error
        except openai.BadRequestError as error:
            raise InvalidRequest(f"openai backend refused the request: {error}") from error
        except openai.APIError as error:
            raise NotReady(f"openai backend failed: {error}") from error
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
