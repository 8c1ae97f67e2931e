"""The inference service as a process: overload over gRPC, constrained output, /metrics."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator

import grpc
import pytest

from raildebug.grpc_runtime.errors import RETRY_AFTER_METADATA
from raildebug.v1 import inference_pb2, inference_pb2_grpc
from tests.support.net import free_port
from tests.support.processes import ServiceProcess, StartService

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def small_inference(start_service: StartService) -> Iterator[tuple[ServiceProcess, int]]:
    """One slot and a queue of one, so that a third caller is refused."""
    metrics_port = free_port()
    service = start_service(
        "inference",
        slots="1",
        max_queue="1",
        n_ctx="2048",
        n_threads="1",
        metrics_port=str(metrics_port),
    )
    yield service, metrics_port
    service.stop()


def _wait_for(stub: inference_pb2_grpc.InferenceStub, busy: int, waiting: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = stub.Info(inference_pb2.InfoRequest(), timeout=5)
        if (info.busy_slots, info.queue_depth) == (busy, waiting):
            return
        time.sleep(0.05)
    raise AssertionError(f"never reached busy={busy} queue={waiting}")


def test_a_caller_beyond_slots_and_queue_gets_resource_exhausted_with_a_retry_hint(
    small_inference: tuple[ServiceProcess, int],
) -> None:
    service, _ = small_inference
    stub = inference_pb2_grpc.InferenceStub(service.channel())
    long = inference_pb2.GenerateRequest(prompt="Describe every relay:\n", max_tokens=1500)
    calls = [stub.Generate(long, timeout=120) for _ in range(2)]
    ended: list[grpc.StatusCode] = []

    def drain(call: Iterator[inference_pb2.GenerateResponse]) -> None:
        try:
            list(call)
        except grpc.RpcError as error:
            ended.append(error.code())

    readers = [threading.Thread(target=drain, args=(c,), daemon=True) for c in calls]
    for reader in readers:
        reader.start()
    try:
        _wait_for(stub, busy=1, waiting=1)
        with pytest.raises(grpc.RpcError) as refused:
            list(stub.Generate(long, timeout=30))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "queue limit 1" in refused.value.details()
        hints = dict(refused.value.trailing_metadata() or ())
        assert int(hints[RETRY_AFTER_METADATA]) > 0
    finally:
        for call in calls:
            call.cancel()
    for reader in readers:
        reader.join(30)
    assert ended == [grpc.StatusCode.CANCELLED] * 2
    _wait_for(stub, busy=0, waiting=0)


def test_json_schema_output_parses(small_inference: tuple[ServiceProcess, int]) -> None:
    service, _ = small_inference
    stub = inference_pb2_grpc.InferenceStub(service.channel())
    schema = {"type": "object", "properties": {"code": {"enum": ["E73-B", "E12-A"]}}}
    text = "".join(
        m.delta
        for m in stub.Generate(
            inference_pb2.GenerateRequest(
                prompt="Error of the failed point lock as JSON:",
                json_schema=json.dumps(schema),
                max_tokens=30,
            ),
            timeout=120,
        )
        if m.WhichOneof("event") == "delta"
    )
    assert json.loads(text).get("code") in {None, "E73-B", "E12-A"}


def test_metrics_endpoint_exposes_the_inference_instruments(
    small_inference: tuple[ServiceProcess, int],
) -> None:
    service, metrics_port = small_inference
    stub = inference_pb2_grpc.InferenceStub(service.channel())
    list(stub.Generate(inference_pb2.GenerateRequest(prompt="Signals", max_tokens=4), timeout=60))
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as page:
        body = page.read().decode()
    samples: dict[str, float] = {}  # series name -> value summed over label sets
    labelled: dict[tuple[str, str], float] = {}  # (series name, labels) -> value
    for line in body.splitlines():
        if line.startswith(("raildebug_inference_", "gen_ai_server_")):
            series, value = line.rsplit(" ", 1)
            name, _, labels = series.partition("{")
            samples[name] = samples.get(name, 0.0) + float(value)
            labelled[name, labels] = float(value)
    for name in (
        "raildebug_inference_queue_size",
        "raildebug_inference_slots_busy",
        "raildebug_inference_queue_wait_time_seconds_count",
        "raildebug_inference_prompt_cache_tokens_total",
    ):
        assert name in samples, sorted(samples)
    assert samples["gen_ai_server_time_to_first_token_seconds_count"] >= 1
    assert samples["gen_ai_server_time_per_output_token_seconds_count"] >= 1
    assert samples["gen_ai_server_request_duration_seconds_count"] >= 1

    def tokens(token_type: str) -> float:
        return sum(
            value
            for (name, labels), value in labelled.items()
            if name == "raildebug_inference_tokens_total"
            and f'gen_ai_token_type="{token_type}"' in labels
            and 'gen_ai_operation_name="text_completion"' in labels
        )

    assert tokens("input") >= 1
    assert tokens("output") >= 4
