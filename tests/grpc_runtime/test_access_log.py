"""One access-log line per RPC (README "Architecture"), whatever way it ends: a cancelled or
timed-out stream, a cancelled unary call, a handler bug. A canned servicer on a loopback port,
behind the real ErrorMappingInterceptor."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, MutableMapping
from concurrent import futures
from typing import Any

import grpc
import pytest
from structlog.testing import capture_logs

from raildebug.grpc_runtime.interceptors import ErrorMappingInterceptor

SERVICE = "test.Canned"

Line = MutableMapping[str, Any]  # one captured log entry


def _ticks(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    """Streams forever (well, 10 s): grpc drops the generator once the caller is gone."""
    for _ in range(200):
        yield b"tick"
        time.sleep(0.05)


def _until_cancelled(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    """Notices the caller left and returns normally, as our servicers do."""
    yield b"first"
    ended = threading.Event()
    context.add_callback(ended.set)
    ended.wait(10)


def _slow_unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    ended = threading.Event()
    context.add_callback(ended.set)
    ended.wait(10)
    return b"late"


def _broken(request: bytes, context: grpc.ServicerContext) -> bytes:
    raise KeyError("a bug")


@pytest.fixture
def address() -> Iterator[str]:
    handlers = {
        "Ticks": grpc.unary_stream_rpc_method_handler(_ticks),
        "UntilCancelled": grpc.unary_stream_rpc_method_handler(_until_cancelled),
        "SlowUnary": grpc.unary_unary_rpc_method_handler(_slow_unary),
        "Broken": grpc.unary_unary_rpc_method_handler(_broken),
    }
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4), interceptors=[ErrorMappingInterceptor()]
    )
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)


def _rpc_lines(logs: list[Line], method: str) -> list[Line]:
    return [entry for entry in logs if entry.get("event") == "rpc" and entry["method"] == method]


def _wait_for_line(logs: list[Line], method: str) -> Line:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = _rpc_lines(logs, method)
        if lines:
            time.sleep(0.2)  # a second line would be a bug too
            lines = _rpc_lines(logs, method)
            assert len(lines) == 1, lines
            return lines[0]
        time.sleep(0.02)
    raise AssertionError(f"no access-log line for {method}")


@pytest.mark.parametrize("name", ["Ticks", "UntilCancelled"])
def test_a_stream_the_caller_cancels_gets_one_cancelled_line(address: str, name: str) -> None:
    method = f"/{SERVICE}/{name}"
    with capture_logs() as logs, grpc.insecure_channel(address) as channel:
        call = channel.unary_stream(method)(b"", timeout=30)
        assert next(call) in (b"tick", b"first")
        call.cancel()
        line = _wait_for_line(logs, method)
    assert line["status"] == "CANCELLED"
    assert line["duration_ms"] >= 0


def test_a_stream_whose_deadline_passes_gets_one_deadline_line(address: str) -> None:
    method = f"/{SERVICE}/UntilCancelled"
    with capture_logs() as logs, grpc.insecure_channel(address) as channel:
        call = channel.unary_stream(method)(b"", timeout=0.5)
        with pytest.raises(grpc.RpcError) as ended:
            list(call)
        assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        line = _wait_for_line(logs, method)
    assert line["status"] == "DEADLINE_EXCEEDED"


def test_a_unary_call_the_caller_cancels_is_not_logged_as_ok(address: str) -> None:
    method = f"/{SERVICE}/SlowUnary"
    with capture_logs() as logs, grpc.insecure_channel(address) as channel:
        future = channel.unary_unary(method).future(b"", timeout=30)
        time.sleep(0.3)  # the handler is running
        future.cancel()
        line = _wait_for_line(logs, method)
    assert line["status"] == "CANCELLED"


def test_a_handler_bug_is_logged_as_unknown(address: str) -> None:
    method = f"/{SERVICE}/Broken"
    with capture_logs() as logs, grpc.insecure_channel(address) as channel:
        with pytest.raises(grpc.RpcError) as failed:
            channel.unary_unary(method)(b"", timeout=10)
        assert failed.value.code() == grpc.StatusCode.UNKNOWN
        line = _wait_for_line(logs, method)
    assert line["status"] == "UNKNOWN"
    assert line["error"] == "KeyError: 'a bug'"
