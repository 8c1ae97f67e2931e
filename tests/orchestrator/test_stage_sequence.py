"""The stage sequence: order, skipping, one span per stage, failures on the right span."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, StatusCode

from raildebug.errors import InvalidRequest, NotReady
from services.orchestrator.models import AnswerDelta, DebugEvent, DebugQuestion
from services.orchestrator.pipeline import PipelineParts, standard_stages
from services.orchestrator.prompt_registry import PromptRegistry
from services.orchestrator.prompt_sources import LocalPromptSource
from services.orchestrator.response_cache import MemoryResponseCache
from services.orchestrator.stage_sequence import DebugState, StageSequence


class Emit:
    def __init__(self, name: str, text: str, when: bool = True) -> None:
        self.name, self._text, self._when = name, text, when

    def applies(self, state: DebugState) -> bool:
        return self._when

    def run(self, state: DebugState, span: Span) -> Iterator[DebugEvent]:
        span.set_attribute("emitted", self._text)
        state.answer_parts.append(self._text)
        yield AnswerDelta(self._text)


class HoldForApproval:
    """An added stage: refuses to finish unless approved (e.g. a human verification step)."""

    name = "approval"

    def __init__(self, approved: bool) -> None:
        self._approved = approved

    def applies(self, state: DebugState) -> bool:
        return True

    def run(self, state: DebugState, span: Span) -> Iterator[DebugEvent]:
        if not self._approved:
            raise NotReady("the answer is waiting for approval")
        return iter(())


def _run(sequence: StageSequence) -> list[DebugEvent]:
    state = DebugState(
        DebugQuestion(question="q"), "rid", deadline=1e12, is_cancelled=lambda: False
    )
    return list(sequence.run(state))


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_stages_run_in_order_skip_when_not_applicable_and_get_a_span_each(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    sequence = StageSequence(
        [Emit("a", "1"), Emit("skipped", "x", when=False), Emit("b", "2")],
        provider.get_tracer("test"),
    )
    assert [e.text for e in _run(sequence)] == ["1", "2"]  # type: ignore[union-attr]
    finished = {s.name: s for s in exporter.get_finished_spans()}
    assert set(finished) == {"debug.request", "debug.a", "debug.b"}
    request = finished["debug.request"]
    assert finished["debug.b"].parent.span_id == request.context.span_id  # type: ignore[union-attr]
    assert finished["debug.a"].attributes["emitted"] == "1"  # type: ignore[index]


def test_an_added_stage_is_a_local_change_and_its_failure_marks_its_span(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    tracer = provider.get_tracer("test")
    assert len(_run(StageSequence([Emit("a", "1"), HoldForApproval(True)], tracer))) == 1
    with pytest.raises(NotReady, match="approval"):
        _run(StageSequence([Emit("a", "1"), HoldForApproval(False)], tracer))
    failed = [s for s in exporter.get_finished_spans() if s.name == "debug.approval"][-1]
    assert failed.status.status_code == StatusCode.ERROR
    with pytest.raises(ValueError, match="unique"):
        StageSequence([Emit("a", "1"), Emit("a", "2")], tracer)


def test_validation_is_the_first_stage(
    spans: tuple[TracerProvider, InMemorySpanExporter], tmp_path: Path
) -> None:
    provider, _ = spans
    sequence = StageSequence(standard_stages(_parts(None, tmp_path)), provider.get_tracer("t"))
    state = DebugState(DebugQuestion(question=" "), "r", 1e12, lambda: False)
    with pytest.raises(InvalidRequest, match="question is empty"):
        list(sequence.run(state))


def test_the_standard_sequence_adds_cache_stages_only_with_a_cache(tmp_path: Path) -> None:
    without = [s.name for s in standard_stages(_parts(None, tmp_path))]
    assert without == ["validate", "select_prompt", "retrieval", "prompt", "analysis", "response"]
    with_cache = [s.name for s in standard_stages(_parts(MemoryResponseCache(1, 1), tmp_path))]
    assert with_cache == [
        "validate",
        "select_prompt",
        "cache_lookup",
        "cache_replay",
        "retrieval",
        "prompt",
        "analysis",
        "cache_store",
        "response",
    ]


def _parts(cache: MemoryResponseCache | None, registry_dir: Path) -> PipelineParts:
    return PipelineParts(
        passages=None,  # type: ignore[arg-type]  # not reached: these tests stop before retrieval
        analyzer=None,  # type: ignore[arg-type]
        prompts=LocalPromptSource(PromptRegistry(registry_dir)),
        cache=cache,
    )
