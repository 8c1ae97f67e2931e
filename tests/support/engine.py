"""Driving a `LlamaEngine` from tests: the `engine` fixture's sizes and streams in threads."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from raildebug.domain import GenerationOutcome
from services.inference.engine import LlamaEngine
from services.inference.models import GenerationRequest, Sampling

SLOTS = 4
MAX_QUEUE = 2
GREEDY = Sampling(temperature=0.0)


@dataclass
class Stream:
    """A generation consumed in a background thread, cancellable through its flag."""

    text: list[str] = field(default_factory=list)
    outcome: GenerationOutcome | None = None
    error: BaseException | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    first_delta: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def joined(self) -> str:
        return "".join(self.text)


def run(engine: LlamaEngine, request: GenerationRequest) -> tuple[str, GenerationOutcome]:
    text: list[str] = []
    outcome: GenerationOutcome | None = None
    for event in engine.generate(request):
        if isinstance(event, GenerationOutcome):
            outcome = event
        else:
            text.append(event.text)
    assert outcome is not None
    return "".join(text), outcome


def start(engine: LlamaEngine, request: GenerationRequest) -> Stream:
    stream = Stream()

    def consume() -> None:
        try:
            for event in engine.generate(request, is_cancelled=stream.cancel.is_set):
                if isinstance(event, GenerationOutcome):
                    stream.outcome = event
                else:
                    stream.text.append(event.text)
                    stream.first_delta.set()
        except BaseException as error:
            stream.error = error
            stream.first_delta.set()

    stream.thread = threading.Thread(target=consume, daemon=True)
    stream.thread.start()
    return stream


def finish(stream: Stream, timeout_s: float = 120) -> GenerationOutcome:
    assert stream.thread is not None
    stream.thread.join(timeout_s)
    assert not stream.thread.is_alive(), "stream did not end"
    if stream.error is not None:
        raise stream.error
    assert stream.outcome is not None
    return stream.outcome
