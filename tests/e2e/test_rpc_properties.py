"""Property: no request, however hostile, gets UNKNOWN or INTERNAL, ends a process, or turns a
service's health away from SERVING.

Hypothesis generates messages for every RPC of the three services (random and huge strings,
control characters, huge and negative numbers, NaN and infinities, enum values nobody defined,
grammars and JSON schemas) and random bytes as raw request bodies, sent through generic
`unary_unary` / `unary_stream` / `stream_unary` calls with identity serializers, to the real
servers on loopback. Any status but UNKNOWN and INTERNAL is a fine answer (INVALID_ARGUMENT,
NOT_FOUND, DEADLINE_EXCEEDED for a generation that outlives its short deadline, ...).

Ingest and DeleteSource go to a retriever of their own so the shared stack's corpus stays as
the other end-to-end tests expect it. The example counts are bounded (about a minute or two on
2 cores); set HYPOTHESIS_MAX_EXAMPLES to run more.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from raildebug.v1 import (
    common_pb2,
    inference_pb2,
    orchestrator_pb2,
    retriever_pb2,
)
from tests.support.processes import ServiceProcess, Stack, StartService

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "30"))
FORBIDDEN = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.UNIMPLEMENTED,
}
NONSENSE = '{"type":"nonsense"}'  # once UNKNOWN with the converter's AssertionError
CALL_TIMEOUT_S = 8.0  # a generation that is valid but long ends DEADLINE_EXCEEDED, which is fine

PROPERTY = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,  # nothing written into the working tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)

# --- strategies ---------------------------------------------------------------------------

HUGE = st.sampled_from(["x" * 100_000, "é" * 40_000, "\0" * 10_000, "E73-B " * 5_000])
TEXT = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"[A-Za-z0-9._:@/ -]{0,24}", fullmatch=True),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=200),
    st.sampled_from(["", " ", "\0", "E73-B", "docs/errors-points.md", "'; DROP TABLE x; --"]),
    HUGE,
)
UINT32 = st.one_of(st.integers(0, 3), st.integers(0, 2**32 - 1))
ENUM = st.one_of(st.integers(-3, 5), st.integers(-(2**31), 2**31 - 1))
FLOAT32 = st.one_of(
    st.floats(width=32, allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 1.0, -1.0, 3.4e38, 1e-45]),
)
TOKENS = st.one_of(st.integers(1, 3), st.integers(2049, 2**32 - 1))  # valid ones stay short
LABELS = st.lists(TEXT, max_size=3) | st.lists(st.sampled_from(["doc", "code", "x"]), max_size=20)
METADATA = st.dictionaries(
    st.one_of(st.sampled_from(["subsystem", "version", "component"]), TEXT), TEXT, max_size=3
)
GRAMMARS = st.one_of(
    st.sampled_from(
        [
            "",
            "root ::= [z-a]",
            'root ::= "a" [z-a]',
            r"root ::= [^\x01-\U0010FFFF]",
            'root ::= "E" [0-9] [0-9]',
            "root ::= root",
            'root ::= "a"{0,4294967295}',
            "root ::= " + "(" * 30_000 + '"a"' + ")" * 30_000,
            'root ::= ("a" | "b")* "c"',
            "root ::= [",
        ]
    ),
    TEXT,
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
SCHEMA_KEYS = st.sampled_from(
    [
        "type",
        "pattern",
        "$ref",
        "enum",
        "items",
        "properties",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "anyOf",
        "required",
        "const",
        "format",
    ]
)
SCHEMAS = st.one_of(
    st.just(""),
    st.sampled_from(
        [
            '{"type":"nonsense"}',
            '{"type":"string","pattern":"("}',
            '{"$ref":"#/$defs/missing"}',
            '{"type":"string","minLength":100000000}',
            '{"type":"object"}',
            "[" * 5_000,
        ]
    ),
    st.dictionaries(SCHEMA_KEYS, JSON_VALUES, max_size=4).map(json.dumps),
    TEXT,
)


# Each message starts valid and gets up to three fields replaced by hostile values, so that
# both the validation and the paths behind it (retrieval, generation, ingest) are exercised.
VALID_ID = st.one_of(st.just(""), st.from_regex(r"[A-Za-z0-9._:@/-]{1,24}", fullmatch=True))
VALID_QUESTION = st.sampled_from(
    [
        "E73-B when point P12 fails to lock — why?",
        "Track shows occupied with no train on it",
        "axle counter reset refused",
    ]
)
VALID_FILTER = st.sampled_from(
    [
        common_pb2.PassageFilter(),
        common_pb2.PassageFilter(kinds=["doc"]),
        common_pb2.PassageFilter(source_prefix="src/", metadata={"subsystem": "points"}),
    ]
)
VALID_GRAMMARS = st.sampled_from(
    [
        ("", ""),
        ('root ::= "E" [0-9] [0-9]', ""),
        ('root ::= ("a" | "b")* "c"', ""),
        ("", '{"type":"boolean"}'),
        ("", '{"type":"object"}'),
    ]
)


def _mutated(
    draw: st.DrawFn,
    valid: dict[str, st.SearchStrategy[Any]],
    hostile: dict[str, st.SearchStrategy[Any]],
) -> dict[str, Any]:
    """Valid fields, up to three of them replaced by hostile values."""
    fields = {name: draw(strategy) for name, strategy in valid.items()}
    for name in draw(st.lists(st.sampled_from(sorted(hostile)), max_size=3, unique=True)):
        fields[name] = draw(hostile[name])
    return fields


@st.composite
def passage_filters(draw: st.DrawFn) -> common_pb2.PassageFilter:
    return common_pb2.PassageFilter(
        kinds=draw(LABELS),
        languages=draw(LABELS),
        source_prefix=draw(TEXT),
        metadata=draw(METADATA),
    )


@st.composite
def debug_requests(draw: st.DrawFn) -> orchestrator_pb2.DebugRequest:
    fields = _mutated(
        draw,
        {
            "question": VALID_QUESTION,
            "code_snippet": st.sampled_from(["", "if (!locked) raise(E73_B);"]),
            "error_log": st.sampled_from(["", "E73-B P12 lock timeout"]),
            "filter": VALID_FILTER,
            "k": st.integers(0, 3),
            "client_id": VALID_ID,
            "session_id": VALID_ID,
            "max_tokens": st.integers(1, 3),
        },
        {
            "question": TEXT,
            "code_snippet": TEXT,
            "error_log": TEXT,
            "filter": passage_filters(),
            "k": UINT32,
            "client_id": TEXT,
            "session_id": TEXT,
            "max_tokens": TOKENS,
        },
    )
    return orchestrator_pb2.DebugRequest(**fields)


@st.composite
def feedback_requests(draw: st.DrawFn) -> orchestrator_pb2.FeedbackRequest:
    fields = _mutated(
        draw,
        {
            "request_id": VALID_ID,
            "score": st.floats(-1.0, 1.0, width=32),
            "comment": st.text(max_size=40),
            "client_id": VALID_ID,
        },
        {"request_id": TEXT, "score": FLOAT32, "comment": TEXT, "client_id": TEXT},
    )
    return orchestrator_pb2.FeedbackRequest(**fields)


@st.composite
def search_requests(draw: st.DrawFn) -> retriever_pb2.SearchRequest:
    fields = _mutated(
        draw,
        {
            "query": VALID_QUESTION,
            "k": st.integers(0, 10),
            "fusion": st.integers(0, 2),
            "alpha": st.none() | st.floats(0.0, 1.0, width=32),
            "max_per_source": st.none() | st.integers(0, 5),
            "filter": VALID_FILTER,
        },
        {
            "query": TEXT,
            "k": UINT32,
            "fusion": ENUM,
            "alpha": FLOAT32,
            "max_per_source": UINT32,
            "filter": passage_filters(),
        },
    )
    fusion = fields.pop("fusion")
    request = retriever_pb2.SearchRequest(**{k: v for k, v in fields.items() if v is not None})
    request.fusion = fusion
    return request


@st.composite
def ingest_documents(draw: st.DrawFn) -> retriever_pb2.IngestDocument:
    fields = _mutated(
        draw,
        {
            "source": st.from_regex(r"fuzz/[a-z]{1,8}\.(md|c|txt)", fullmatch=True),
            "content": st.text(max_size=500),
            "kind": st.sampled_from(["", "doc", "code", "text"]),
            "language": st.just(""),
            "metadata": st.sampled_from([{}, {"subsystem": "points"}]),
            "title": st.sampled_from(["", "Point machines"]),
        },
        {
            "source": TEXT,
            "content": st.one_of(st.text(max_size=2_000), st.sampled_from(["", "\0\0", "E73-B"])),
            "kind": TEXT,
            "language": TEXT,
            "metadata": METADATA,
            "title": TEXT,
        },
    )
    return retriever_pb2.IngestDocument(**fields)


@st.composite
def sampling_params(draw: st.DrawFn, hostile: bool) -> inference_pb2.SamplingParams:
    values = {
        "temperature": FLOAT32 if hostile else st.floats(0.0, 2.0, width=32),
        "top_p": FLOAT32 if hostile else st.floats(0.25, 1.0, width=32),
        "top_k": UINT32 if hostile else st.integers(0, 100),
        "repeat_penalty": FLOAT32 if hostile else st.floats(1.0, 2.0, width=32),
        "seed": UINT32,
    }
    params = inference_pb2.SamplingParams()
    for name, strategy in values.items():
        if draw(st.booleans()):
            setattr(params, name, draw(strategy))
    return params


@st.composite
def chat_inputs(draw: st.DrawFn, hostile: bool) -> inference_pb2.ChatMessages:
    role = st.sampled_from(["system", "user", "assistant"])
    content = st.text(max_size=60)
    if hostile:
        role, content = st.one_of(role, TEXT), TEXT
    messages = st.lists(
        st.builds(inference_pb2.ChatMessage, role=role, content=content),
        min_size=0 if hostile else 1,
        max_size=4,
    )
    return inference_pb2.ChatMessages(messages=draw(messages))


@st.composite
def generate_requests(draw: st.DrawFn) -> inference_pb2.GenerateRequest:
    fields = _mutated(
        draw,
        {
            "prompt": st.none() | st.sampled_from(["Point P12:", "E73-B means"]),
            "chat": chat_inputs(hostile=False),
            "max_tokens": st.integers(1, 3),
            "sampling": sampling_params(hostile=False),
            "stop": st.sampled_from([[], ["\n"], ["."]]),
            "request_id": VALID_ID,
            "constraint": VALID_GRAMMARS,
        },
        {
            "prompt": TEXT,
            "chat": chat_inputs(hostile=True),
            "max_tokens": TOKENS,
            "sampling": sampling_params(hostile=True),
            "stop": st.lists(TEXT, max_size=10),
            "request_id": TEXT,
            "constraint": st.one_of(
                st.tuples(GRAMMARS, st.just("")),
                st.tuples(st.just(""), SCHEMAS),
                st.tuples(GRAMMARS, SCHEMAS),
            ),
        },
    )
    grammar, json_schema = fields.pop("constraint")
    prompt, chat = fields.pop("prompt"), fields.pop("chat")
    request = inference_pb2.GenerateRequest(grammar=grammar, json_schema=json_schema, **fields)
    if prompt is not None:  # the oneof: a prompt, or else the chat
        request.prompt = prompt
    else:
        request.chat.CopyFrom(chat)
    return request


# --- calling ------------------------------------------------------------------------------


def _status_of(invoke: Callable[[], Any]) -> grpc.StatusCode:
    try:
        result = invoke()
        if isinstance(result, Iterator):
            for _ in result:
                pass
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def _call(channel: grpc.Channel, method: str, kind: str, body: Any) -> grpc.StatusCode:
    """One call with raw bytes: a bytes body, or a list of them for a client stream."""
    stub = getattr(channel, kind)(method)  # no serializers: bytes in, bytes out
    return _status_of(lambda: stub(body, timeout=CALL_TIMEOUT_S))


TALLY: dict[str, Counter[str]] = defaultdict(Counter)  # printed per test: what was exercised


def _check(
    service: ServiceProcess, channel: grpc.Channel, method: str, kind: str, body: Any
) -> None:
    code = _call(channel, method, kind, body)
    TALLY[method][code.name] += 1
    assert code not in FORBIDDEN, f"{method} answered {code.name}"
    assert service.process.poll() is None, (
        f"{service.name} died:\n{service.log_path.read_text(errors='replace')[-3000:]}"
    )


LOG_START: dict[str, int] = {}  # log size per service when this module began
SWALLOWED = ("Traceback", "engine thread failed", "Exception calling application")


def _assert_serving(*services: ServiceProcess) -> None:
    """Alive, SERVING, and no failure hidden behind a fine status (a traceback, a dead engine
    thread that would make every later generation end "engine stopped")."""
    print("\nstatuses:", {method: dict(codes) for method, codes in TALLY.items()})
    TALLY.clear()
    for service in services:
        assert service.process.poll() is None, f"{service.name} died"
        with service.log_path.open("rb") as log:
            log.seek(LOG_START.get(service.address, 0))
            new = log.read().decode(errors="replace")
        hidden = [line for line in new.splitlines() if any(s in line for s in SWALLOWED)]
        assert not hidden, f"{service.name} logged: {hidden[:3]}"
        health = health_pb2_grpc.HealthStub(service.channel())
        status = health.Check(health_pb2.HealthCheckRequest(), timeout=10).status
        assert status == health_pb2.HealthCheckResponse.SERVING, (service.name, status)


def _bytes(message: Message) -> bytes:
    return message.SerializeToString()


@pytest.fixture(scope="module")
def scratch_retriever(start_service: StartService) -> ServiceProcess:
    """A retriever of this module's own, for the RPCs that write."""
    return start_service("retriever")


@pytest.fixture(scope="module")
def channels(stack: Stack, scratch_retriever: ServiceProcess) -> dict[str, grpc.Channel]:
    for service in (stack.orchestrator, stack.retriever, stack.inference, scratch_retriever):
        LOG_START[service.address] = service.log_path.stat().st_size
    return {
        "orchestrator": stack.orchestrator.channel(),
        "retriever": stack.retriever.channel(),
        "inference": stack.inference.channel(),
        "scratch": scratch_retriever.channel(),
    }


# --- properties ---------------------------------------------------------------------------


def test_debug_never_fails_unknown_or_internal(
    stack: Stack, channels: dict[str, grpc.Channel]
) -> None:
    @PROPERTY
    @given(debug_requests())
    @example(orchestrator_pb2.DebugRequest(question="E73-B", max_tokens=2, client_id="x" * 10**6))
    def check(request: orchestrator_pb2.DebugRequest) -> None:
        _check(
            stack.orchestrator,
            channels["orchestrator"],
            "/raildebug.v1.Orchestrator/Debug",
            "unary_stream",
            _bytes(request),
        )

    check()
    _assert_serving(stack.orchestrator, stack.retriever, stack.inference)


def test_feedback_never_fails_unknown_or_internal(
    stack: Stack, channels: dict[str, grpc.Channel]
) -> None:
    @PROPERTY
    @given(feedback_requests())
    def check(request: orchestrator_pb2.FeedbackRequest) -> None:
        _check(
            stack.orchestrator,
            channels["orchestrator"],
            "/raildebug.v1.Orchestrator/Feedback",
            "unary_unary",
            _bytes(request),
        )

    check()
    _assert_serving(stack.orchestrator)


def test_search_never_fails_unknown_or_internal(
    stack: Stack, channels: dict[str, grpc.Channel]
) -> None:
    @PROPERTY
    @given(search_requests())
    def check(request: retriever_pb2.SearchRequest) -> None:
        _check(
            stack.retriever,
            channels["retriever"],
            "/raildebug.v1.Retriever/Search",
            "unary_unary",
            _bytes(request),
        )

    check()
    _assert_serving(stack.retriever)


def test_ingest_and_delete_never_fail_unknown_or_internal(
    scratch_retriever: ServiceProcess, channels: dict[str, grpc.Channel]
) -> None:
    @PROPERTY
    @given(st.lists(ingest_documents(), max_size=3), TEXT)
    def check(documents: list[retriever_pb2.IngestDocument], source: str) -> None:
        channel = channels["scratch"]
        _check(
            scratch_retriever,
            channel,
            "/raildebug.v1.Retriever/Ingest",
            "stream_unary",
            iter([_bytes(d) for d in documents]),
        )
        for doomed in [*(d.source for d in documents), source]:
            _check(
                scratch_retriever,
                channel,
                "/raildebug.v1.Retriever/DeleteSource",
                "unary_unary",
                _bytes(retriever_pb2.DeleteSourceRequest(source=doomed)),
            )

    check()
    _assert_serving(scratch_retriever)


def test_generate_never_fails_unknown_or_internal(
    stack: Stack, channels: dict[str, grpc.Channel]
) -> None:
    @PROPERTY
    @given(generate_requests())
    @example(inference_pb2.GenerateRequest(prompt="x", max_tokens=2, grammar="root ::= [z-a]"))
    @example(inference_pb2.GenerateRequest(prompt="x", max_tokens=2, json_schema=NONSENSE))
    def check(request: inference_pb2.GenerateRequest) -> None:
        _check(
            stack.inference,
            channels["inference"],
            "/raildebug.v1.Inference/Generate",
            "unary_stream",
            _bytes(request),
        )

    check()
    _assert_serving(stack.inference)


MESSAGES: dict[str, st.SearchStrategy[Message]] = {
    "/raildebug.v1.Orchestrator/Debug": debug_requests(),
    "/raildebug.v1.Orchestrator/Feedback": feedback_requests(),
    "/raildebug.v1.Retriever/Search": search_requests(),
    "/raildebug.v1.Retriever/Stats": st.just(retriever_pb2.StatsRequest()),
    "/raildebug.v1.Retriever/Ingest": ingest_documents(),
    "/raildebug.v1.Retriever/DeleteSource": st.builds(
        retriever_pb2.DeleteSourceRequest, source=TEXT
    ),
    "/raildebug.v1.Inference/Generate": generate_requests(),
    "/raildebug.v1.Inference/Info": st.just(inference_pb2.InfoRequest()),
    "/grpc.health.v1.Health/Check": st.builds(health_pb2.HealthCheckRequest, service=TEXT),
}


@st.composite
def raw_bodies(draw: st.DrawFn, method: str) -> bytes:
    """Random bytes, or the method's message cut short, with a byte changed or junk appended."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))
    data = draw(MESSAGES[method]).SerializeToString()
    how = draw(st.sampled_from(["cut", "flip", "append", "as is"]))
    at = draw(st.integers(0, max(len(data) - 1, 0)))
    if how == "cut":
        return data[:at]
    if how == "flip" and data:
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    if how == "append":
        return data + draw(st.binary(min_size=1, max_size=40))
    return data


RAW_RPCS = [
    ("orchestrator", "/raildebug.v1.Orchestrator/Debug", "unary_stream"),
    ("orchestrator", "/raildebug.v1.Orchestrator/Feedback", "unary_unary"),
    ("retriever", "/raildebug.v1.Retriever/Search", "unary_unary"),
    ("retriever", "/raildebug.v1.Retriever/Stats", "unary_unary"),
    ("scratch", "/raildebug.v1.Retriever/Ingest", "stream_unary"),
    ("scratch", "/raildebug.v1.Retriever/DeleteSource", "unary_unary"),
    ("inference", "/raildebug.v1.Inference/Generate", "unary_stream"),
    ("inference", "/raildebug.v1.Inference/Info", "unary_unary"),
    ("inference", "/grpc.health.v1.Health/Check", "unary_unary"),
]


@pytest.mark.parametrize(("target", "method", "kind"), RAW_RPCS)
def test_raw_bodies_never_fail_unknown_or_internal(
    stack: Stack,
    scratch_retriever: ServiceProcess,
    channels: dict[str, grpc.Channel],
    target: str,
    method: str,
    kind: str,
) -> None:
    service = scratch_retriever if target == "scratch" else getattr(stack, target)
    bodies = raw_bodies(method)

    @PROPERTY
    @given(st.lists(bodies, min_size=1, max_size=3) if kind == "stream_unary" else bodies)
    def check(body: Any) -> None:
        _check(
            service, channels[target], method, kind, iter(body) if isinstance(body, list) else body
        )

    check()
    _assert_serving(service)
