"""OpenTelemetry instruments of the inference service (scraped from /metrics on metrics_port).

A GenAI model server in OpenTelemetry's terms: gen_ai.server.* durations with the operation,
provider and model as attributes, plus our queue, slot and token instruments. Names live in
raildebug.observability.conventions.
"""

from __future__ import annotations

from opentelemetry.util.types import Attributes

from raildebug.domain import FinishReason
from raildebug.observability import conventions as conv
from raildebug.observability.metrics import counter, histogram, meter, up_down_counter
from services.inference.models import GenerationRequest

_meter = meter("raildebug.inference")

queue_size = up_down_counter(_meter, conv.METRIC_INFERENCE_QUEUE_SIZE)
busy_slots = up_down_counter(_meter, conv.METRIC_INFERENCE_SLOTS_BUSY)
queue_wait = histogram(_meter, conv.METRIC_INFERENCE_QUEUE_WAIT_TIME)
request_duration = histogram(_meter, conv.METRIC_GEN_AI_SERVER_REQUEST_DURATION)
time_to_first_token = histogram(_meter, conv.METRIC_GEN_AI_SERVER_TIME_TO_FIRST_TOKEN)
time_per_output_token = histogram(_meter, conv.METRIC_GEN_AI_SERVER_TIME_PER_OUTPUT_TOKEN)
tokens = counter(_meter, conv.METRIC_INFERENCE_TOKENS)
cached_prompt_tokens = counter(_meter, conv.METRIC_INFERENCE_PROMPT_CACHE_TOKENS)
rejected = counter(_meter, conv.METRIC_INFERENCE_REJECTED)
draft_tokens = counter(_meter, conv.METRIC_INFERENCE_DRAFT_TOKENS)


def generation_attributes(provider: str, model: str, request: GenerationRequest) -> Attributes:
    """The gen_ai attributes every generation metric carries."""
    return {
        conv.ATTR_GEN_AI_OPERATION_NAME: (
            conv.GEN_AI_OPERATION_CHAT
            if request.chat is not None
            else conv.GEN_AI_OPERATION_TEXT_COMPLETION
        ),
        conv.ATTR_GEN_AI_PROVIDER_NAME: provider,
        conv.ATTR_GEN_AI_REQUEST_MODEL: model,
    }


def generation_finished(
    attributes: Attributes,
    finish: FinishReason,
    *,
    arrived: float,
    first_token_at: float | None,
    last_token_at: float | None,
    ended: float,
    prompt_tokens: int,
    cached_tokens: int,
    completion_tokens: int,
    timed_tokens: int | None = None,
    drafted_tokens: int = 0,
    accepted_draft_tokens: int = 0,
) -> None:
    """Record one generation once it ended (times on one clock, in seconds).

    `timed_tokens` is how many tokens `first_token_at`..`last_token_at` span when that is not
    `completion_tokens` (the gguf engine times the end-of-generation token it does not count).
    """
    base = dict(attributes or {})
    failed = {} if finish.completed else {conv.ATTR_ERROR_TYPE: finish.value}
    request_duration.record(ended - arrived, {**base, **failed})
    if first_token_at is not None:
        time_to_first_token.record(first_token_at - arrived, base)
        timed = completion_tokens if timed_tokens is None else timed_tokens
        if finish.completed and last_token_at is not None and timed > 1:
            time_per_output_token.record((last_token_at - first_token_at) / (timed - 1), base)
    tokens.add(prompt_tokens, {**base, conv.ATTR_GEN_AI_TOKEN_TYPE: conv.GEN_AI_TOKEN_TYPE_INPUT})
    tokens.add(
        completion_tokens, {**base, conv.ATTR_GEN_AI_TOKEN_TYPE: conv.GEN_AI_TOKEN_TYPE_OUTPUT}
    )
    cached_prompt_tokens.add(cached_tokens, base)
    if drafted_tokens:
        draft_tokens.add(accepted_draft_tokens, {**base, conv.ATTR_DRAFT_OUTCOME: "accepted"})
        draft_tokens.add(
            drafted_tokens - accepted_draft_tokens, {**base, conv.ATTR_DRAFT_OUTCOME: "rejected"}
        )
