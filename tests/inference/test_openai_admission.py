"""The openai backend's admission: a caller whose deadline the requests in flight make
impossible is refused at once (Overloaded: RESOURCE_EXHAUSTED with retry-after-ms on the wire)
instead of waiting on the endpoint. The endpoint is an in-process fake of an OpenAI-compatible
server that, like llama_cpp.server, generates for one request at a time, 20 tokens per second;
the backend is the real one, told the endpoint has one slot."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from raildebug.domain import FinishReason, GenerationOutcome
from raildebug.errors import DeadlineExceeded, Overloaded
from raildebug.settings import OpenAISettings
from services.inference.admission import BusyMeter, StepCost
from services.inference.models import GenerationRequest
from services.inference.openai_backend import OpenAIBackend

TOKEN_S = 0.05


class OneAtATime(BaseHTTPRequestHandler):
    generating = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        with self.generating:
            for _ in range(body["max_tokens"]):
                time.sleep(TOKEN_S)
                if not self._send({"choices": [{"index": 0, "text": "a", "finish_reason": None}]}):
                    return
            self._send({"choices": [{"index": 0, "text": "", "finish_reason": "length"}]})
            usage = {"prompt_tokens": 3, "completion_tokens": body["max_tokens"], "total_tokens": 0}
            self._send({"choices": [], "usage": usage})
            self.wfile.write(b"data: [DONE]\n\n")

    def _send(self, chunk: dict[str, Any]) -> bool:
        chunk = {"id": "c", "object": "text_completion", "created": 0, "model": "m", **chunk}
        try:
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        except OSError:  # the backend closed the stream
            return False
        return True

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[OpenAIBackend]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), OneAtATime)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = OpenAISettings(
        base_url=f"http://127.0.0.1:{server.server_port}/v1", model="m", timeout_s=30
    )
    try:
        yield OpenAIBackend(endpoint, slots=1, max_queue=4)
    finally:
        server.shutdown()
        server.server_close()


def test_a_deadline_the_requests_in_flight_make_impossible_is_refused_at_once(
    backend: OpenAIBackend,
) -> None:
    outcomes: list[GenerationOutcome] = []

    def long_answer() -> None:
        for event in backend.generate(GenerationRequest(prompt="x", max_tokens=80)):
            if isinstance(event, GenerationOutcome):
                outcomes.append(event)

    running = threading.Thread(target=long_answer, daemon=True)
    running.start()
    time.sleep(1.5)  # ~30 of its 80 tokens: the backend has measured the endpoint's rate
    started = time.monotonic()
    hurried = GenerationRequest(prompt="y", max_tokens=10)
    with pytest.raises(Overloaded, match="would miss its deadline") as refused:
        next(iter(backend.generate(hurried, deadline=time.monotonic() + 1.0)))
    assert time.monotonic() - started < 0.5, "the refusal must not wait"
    assert 0.1 <= refused.value.retry_after_s <= 60
    assert backend.info().busy_slots == 1 and backend.info().queue_depth == 0
    running.join(30)
    assert [o.finish_reason for o in outcomes] == [FinishReason.LENGTH]
    # With room for the queue ahead it goes through.
    patient = list(backend.generate(hurried, deadline=time.monotonic() + 10))
    assert isinstance(patient[-1], GenerationOutcome)
    assert patient[-1].completion_tokens == 10


def test_a_read_cut_short_by_the_deadline_ends_with_deadline_exceeded(
    backend: OpenAIBackend,
) -> None:
    """Admitted before anything is measured, a request waits on the endpoint until its
    deadline ends the read: DEADLINE_EXCEEDED, not a result with finish_reason ERROR."""
    running = threading.Thread(
        target=lambda: list(backend.generate(GenerationRequest(prompt="x", max_tokens=40))),
        daemon=True,
    )
    running.start()
    time.sleep(0.1)  # it holds the endpoint
    with pytest.raises(DeadlineExceeded, match="the deadline passed after 0 of 10 tokens"):
        list(
            backend.generate(
                GenerationRequest(prompt="y", max_tokens=10), deadline=time.monotonic() + 0.5
            )
        )
    running.join(30)


def test_the_busy_meter_counts_tokens_per_busy_second_only() -> None:
    now = [0.0]
    cost = StepCost(min_steps=1)
    meter = BusyMeter(cost, window_s=1.0, clock=lambda: now[0])
    meter.token()  # nothing in flight: not counted
    meter.busy()
    for _ in range(40):  # 40 tokens in 2 s
        now[0] += 0.05
        meter.token()
    meter.idle()
    now[0] += 100.0  # idle time is not busy time
    meter.busy()
    for _ in range(10):
        now[0] += 0.05
        meter.token()
    meter.idle()
    assert cost.coefficients() == pytest.approx((0.05, 0.05))
