"""The OpenAI-compatible endpoint of RAILDEBUG_OPENAI_* (OpenAISettings): the one place that
builds its client and turns the openai library's exceptions into RailDebug's domain errors.

Used by inference's `openai` backend and by the orchestrator's `openai` analyzer.
"""

from __future__ import annotations

import openai

from raildebug.domain import FinishReason
from raildebug.errors import DeadlineExceeded, InvalidRequest, NotReady, Overloaded, RailDebugError
from raildebug.settings import OpenAISettings

PLACEHOLDER_KEY = "unused"  # self-hosted servers want none; the client refuses an empty one


def endpoint_name(settings: OpenAISettings) -> str:
    return settings.base_url or "https://api.openai.com/v1"


def open_client(settings: OpenAISettings) -> openai.OpenAI:
    """A client of the endpoint: no retries (the callers have deadlines), settings' timeout."""
    key = settings.api_key.get_secret_value() if settings.api_key is not None else ""
    return openai.OpenAI(
        base_url=settings.base_url or None,
        api_key=key or PLACEHOLDER_KEY,
        timeout=settings.timeout_s,
        max_retries=0,
    )


def resolve_model(client: openai.OpenAI, settings: OpenAISettings) -> str:
    """settings.model, else the first model the endpoint lists (a one-model server's alias)."""
    if settings.model:
        return settings.model
    try:
        listed = client.models.list().data
    except openai.OpenAIError as error:
        raise domain_error(error, endpoint_name(settings)) from error
    if not listed:
        raise NotReady(
            f"endpoint {endpoint_name(settings)} lists no model; set RAILDEBUG_OPENAI_MODEL"
        )
    return listed[0].id


def finish_reason(reason: str, *, stop_strings_given: bool) -> FinishReason:
    """An OpenAI `finish_reason` as ours. The API says "stop" both for end of sequence and for
    a stop string; only the request knows which. A filtered reply is whole as far as it goes."""
    if reason == "length":
        return FinishReason.LENGTH
    if reason in ("stop", "content_filter"):
        return FinishReason.STOP if stop_strings_given else FinishReason.EOS
    return FinishReason.ERROR


def domain_error(error: openai.OpenAIError, endpoint: str) -> RailDebugError:
    """What an openai failure means to our caller, with a message that says what to do."""
    if isinstance(error, openai.APITimeoutError):
        return DeadlineExceeded(f"endpoint {endpoint} timed out: {error}")
    if isinstance(error, openai.APIConnectionError):
        return NotReady(f"endpoint {endpoint} unreachable: {error}")
    if isinstance(error, openai.RateLimitError):
        return Overloaded(
            f"endpoint {endpoint} is rate limiting: {error.message}", _retry_after_s(error)
        )
    if isinstance(error, (openai.BadRequestError, openai.UnprocessableEntityError)):
        return InvalidRequest(f"endpoint {endpoint} refused the request: {error.message}")
    if isinstance(error, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return NotReady(
            f"endpoint {endpoint} rejected our credentials ({error.status_code}); "
            "check RAILDEBUG_OPENAI_API_KEY"
        )
    if isinstance(error, openai.NotFoundError):
        return NotReady(
            f"endpoint {endpoint} has no such model or route: {error.message}; "
            "check RAILDEBUG_OPENAI_MODEL and RAILDEBUG_OPENAI_BASE_URL"
        )
    return NotReady(f"endpoint {endpoint} failed: {error}")


def _retry_after_s(error: openai.RateLimitError) -> float:
    try:
        return max(float(error.response.headers.get("retry-after", "1")), 0.0)
    except ValueError:
        return 1.0
