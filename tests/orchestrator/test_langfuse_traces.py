"""Traces to Langfuse: a Debug request run through the real pipeline in this process (prompt
from Langfuse, scripted retriever and analyzer, real feedback log) with a real TracerProvider
whose second exporter is the one `langfuse_traces` adds, sending OTLP/HTTP to the in-process
Langfuse (tests/support/fake_langfuse.py)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langfuse import LangfuseOtelSpanAttributes as LF
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider

from raildebug.observability import conventions as conv
from raildebug.settings import OrchestratorSettings
from services.orchestrator.costs import PriceTable
from services.orchestrator.feedback import FeedbackLog
from services.orchestrator.langfuse_prompts import as_langfuse
from services.orchestrator.langfuse_traces import export_traces_to_langfuse
from services.orchestrator.models import DebugQuestion, DebugSummary, FeedbackEntry
from services.orchestrator.pipeline import DebugPipeline, PipelineParts
from services.orchestrator.prompt_registry import PromptRegistry
from services.orchestrator.prompt_sources import LangfusePromptSource, LocalPromptSource
from services.orchestrator.prompting import PROMPTS_DIR
from tests.support.fake_langfuse import FakeLangfuse, ReceivedSpan, fake_langfuse
from tests.support.scripted_upstreams import ScriptedAnalyzer, ScriptedPassages

PRICES = {"scripted-model": (0.5, 1.5)}  # USD per million prompt / completion tokens


@pytest.fixture
def langfuse() -> Iterator[FakeLangfuse]:
    text, config = as_langfuse((PROMPTS_DIR / "rail_fix@1.toml").read_text(), "seed")
    with fake_langfuse() as fake:
        fake.create_prompt("rail_fix", text, config=config, commit_message="v1")
        fake.create_prompt(
            "rail_fix", text.replace("Cause:", "Root cause:"), config=config, labels=["production"]
        )
        yield fake


def settings_for(fake: FakeLangfuse, tmp_path: Path, **overrides: object) -> OrchestratorSettings:
    values: dict[str, object] = {
        "prompt_registry_dir": tmp_path / "registry",
        "feedback_db": tmp_path / "feedback.sqlite3",
        "langfuse_host": fake.url,
        "langfuse_public_key": fake.public_key,
        "langfuse_secret_key": fake.secret_key,
        "langfuse_traces": True,
    }
    return OrchestratorSettings(**{**values, **overrides})  # type: ignore[arg-type]


def test_a_debug_requests_spans_and_its_feedback_reach_langfuse_over_otlp(
    langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    settings = settings_for(langfuse, tmp_path)
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "raildebug-orchestrator"}))
    assert export_traces_to_langfuse(settings, provider)
    feedback = FeedbackLog(settings.feedback_db, provider)
    prompts = LangfusePromptSource.connect(
        langfuse.url,
        langfuse.public_key,
        langfuse.secret_key,
        LocalPromptSource(PromptRegistry(settings.prompt_registry_dir)),
        timeout_s=2,
        cache_ttl_s=60,
    )
    analyzer = ScriptedAnalyzer(prompt_tokens=1200, completion_tokens=40)
    pipeline = DebugPipeline.standard(
        PipelineParts(
            passages=ScriptedPassages(),
            analyzer=analyzer,
            prompts=prompts,
            prices=PriceTable(PRICES),
            on_answered=feedback.record_answer,
        ),
        provider,
    )
    question = DebugQuestion("E73-B when point P12 fails to lock. Why?", session_id="s-1")
    summary = list(pipeline.run(question, deadline=time.monotonic() + 30))[-1]
    assert isinstance(summary, DebugSummary)
    assert summary.prompt_version == "rail_fix@2"  # Langfuse's production
    assert "Root cause:" in analyzer.prompts[0]
    feedback.record_feedback(FeedbackEntry(summary.request_id, score=0.5, comment="helpful"))
    assert provider.force_flush(timeout_millis=10_000)

    # The request span: model, prompt version, usage and cost, in ours and Langfuse's names.
    (request,) = _spans_with(langfuse, conv.ATTR_REQUEST_ID, summary.request_id, conv.ATTR_COST_USD)
    a = request.attributes
    assert a[conv.ATTR_GEN_AI_RESPONSE_MODEL] == "scripted-model" == a[LF.OBSERVATION_MODEL]
    assert a[conv.ATTR_PROMPT_VERSION] == "rail_fix@2"
    assert (a[LF.OBSERVATION_PROMPT_NAME], a[LF.OBSERVATION_PROMPT_VERSION]) == ("rail_fix", 2)
    assert (a[conv.ATTR_GEN_AI_USAGE_INPUT_TOKENS], a[conv.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS]) == (
        1200,
        40,
    )
    assert json.loads(a[LF.OBSERVATION_USAGE_DETAILS]) == {"input": 1200, "output": 40}
    cost = (1200 * 0.5 + 40 * 1.5) / 1e6
    assert a[conv.ATTR_COST_USD] == pytest.approx(cost) == summary.estimated_cost_usd
    assert json.loads(a[LF.OBSERVATION_COST_DETAILS]) == {"total": pytest.approx(cost)}
    assert request.resource[SERVICE_NAME] == "raildebug-orchestrator"

    # Every stage span of the request arrived, in the same trace, under the request span.
    stages = [s for s in langfuse.spans if s.trace_id == request.trace_id and s is not request]
    assert len(stages) >= 5 and all(s.parent_span_id == request.span_id for s in stages)

    # The feedback score, with what it is about.
    (scored,) = _spans_with(
        langfuse, conv.ATTR_REQUEST_ID, summary.request_id, conv.ATTR_FEEDBACK_SCORE
    )
    assert scored.attributes[conv.ATTR_FEEDBACK_SCORE] == 0.5
    assert scored.attributes[conv.ATTR_PROMPT_VERSION] == "rail_fix@2"
    assert scored.attributes[LF.OBSERVATION_PROMPT_VERSION] == 2

    # As Langfuse's OTLP endpoint wants it: protobuf, basic auth, ingestion version 4.
    exports = langfuse.requests_to("POST", "/api/public/otel/v1/traces")
    assert exports
    for export in exports:
        assert export.headers["content-type"] == "application/x-protobuf"
        assert export.headers["x-langfuse-ingestion-version"] == "4"
        token = base64.b64encode(f"{langfuse.public_key}:{langfuse.secret_key}".encode()).decode()
        assert export.headers["authorization"] == f"Basic {token}"


def test_the_otlp_endpoint_can_be_named_and_tracing_needs_the_keys(
    langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    settings = settings_for(
        langfuse, tmp_path, langfuse_host="", langfuse_otlp_endpoint=langfuse.otlp_traces_url
    )
    provider = TracerProvider()
    assert export_traces_to_langfuse(settings, provider)
    with provider.get_tracer("test").start_as_current_span("probe"):
        pass
    assert provider.force_flush(timeout_millis=10_000)
    assert [s.name for s in langfuse.spans] == ["probe"]

    assert not export_traces_to_langfuse(settings.model_copy(update={"langfuse_traces": False}))
    with pytest.raises(ValueError, match="LANGFUSE_SECRET_KEY"):
        export_traces_to_langfuse(
            settings.model_copy(update={"langfuse_secret_key": None}), TracerProvider()
        )


def test_the_fake_otlp_endpoint_answers_like_langfuse(langfuse: FakeLangfuse) -> None:
    """JSON as well as protobuf, and Langfuse's refusals (no or wrong credentials, bad type)."""
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "x"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "manual"},
                        "spans": [
                            {
                                "traceId": "0123456789abcdef0123456789abcdef",
                                "spanId": "0123456789abcdef",
                                "name": "json-span",
                                "kind": 1,
                                "startTimeUnixNano": "1747872000000000000",
                                "endTimeUnixNano": "1747872001000000000",
                                "attributes": [{"key": "n", "value": {"intValue": "3"}}],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    url = langfuse.otlp_traces_url
    auth = (langfuse.public_key, langfuse.secret_key)
    ok = httpx.post(url, json=body, auth=auth)
    assert (ok.status_code, ok.json()) == (200, {})
    (span,) = langfuse.spans_named("json-span")
    assert span.attributes == {"n": 3} and span.resource == {"service.name": "x"}

    missing = httpx.post(url, json=body)
    assert missing.status_code == 401
    assert missing.json() == {"message": "No authorization header", "error": "UnauthorizedError"}
    wrong = httpx.post(url, json=body, auth=(langfuse.public_key, "sk-lf-wrong"))
    assert wrong.status_code == 401 and "Invalid credentials" in wrong.json()["message"]
    text = httpx.post(url, content=b"x", auth=auth, headers={"content-type": "text/plain"})
    assert (text.status_code, text.json()) == (400, {"error": "Invalid content type"})


def _spans_with(fake: FakeLangfuse, key: str, value: object, also: str) -> list[ReceivedSpan]:
    return [s for s in fake.spans if s.attributes.get(key) == value and also in s.attributes]
