"""What the orchestrator's caller is told when an upstream refuses a call, on real servers:
the real orchestrator, and real retriever and inference servers (their cores never load, or
inference's is a stand-in that is always full: every call here is decided before a model runs).

A wrong upstream token: INTERNAL (a setup error, not the caller's credentials) naming the
upstream and the setting to fix. A full inference: RESOURCE_EXHAUSTED with inference's
retry-after-ms, passed on."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import grpc
import pytest
from pydantic import SecretStr

from raildebug.errors import Overloaded
from raildebug.grpc_runtime.channels import open_channel
from raildebug.grpc_runtime.security import ChannelSecurity
from raildebug.grpc_runtime.server import CoreHolder, RailDebugServer
from raildebug.settings import InferenceSettings, OrchestratorSettings, RetrieverSettings
from raildebug.v1 import (
    inference_pb2_grpc,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    retriever_pb2_grpc,
)
from services.inference.backend import GenerationBackend
from services.inference.models import (
    GenerationEvent,
    GenerationRequest,
    ModelInfo,
    TokenCounts,
)
from services.inference.server import SERVICE_NAME as INFERENCE_SERVICE
from services.inference.server import InferenceServicer
from services.orchestrator.server import build_server
from services.retriever.index import RetrievalIndex
from services.retriever.server import SERVICE_NAME as RETRIEVER_SERVICE
from services.retriever.server import RetrieverServicer
from tests.support.net import free_port

pytestmark = pytest.mark.service

RIGHT = "tok-orchestrator-0123456789"


@contextmanager
def upstream(name: str, grants: str) -> Iterator[str]:
    """A real retriever or inference server requiring one of `grants`; its core never loads."""
    port = free_port()
    if name == "retriever":
        server = RailDebugServer(
            RetrieverSettings(port=port, auth_tokens=SecretStr(grants)), [RETRIEVER_SERVICE]
        )
        store: CoreHolder[RetrievalIndex] = CoreHolder("retrieval store")
        retriever_pb2_grpc.add_RetrieverServicer_to_server(
            RetrieverServicer(store), server.grpc_server
        )
    else:
        server = RailDebugServer(
            InferenceSettings(port=port, auth_tokens=SecretStr(grants)), [INFERENCE_SERVICE]
        )
        backend: CoreHolder[GenerationBackend] = CoreHolder("inference backend gguf")
        inference_pb2_grpc.add_InferenceServicer_to_server(
            InferenceServicer(backend), server.grpc_server
        )
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace_s=0)


def debug_error(
    tmp_path: Path, upstream_token: str, retriever: str, inference: str
) -> grpc.RpcError:
    settings = OrchestratorSettings(
        port=free_port(),
        retriever_address=retriever,
        inference_address=inference,
        upstream_token=SecretStr(upstream_token),
        feedback_db=tmp_path / "feedback.sqlite3",
        prompt_registry_dir=tmp_path / "prompts",
    )
    server = build_server(settings)
    server.start()
    try:
        with open_channel(f"127.0.0.1:{server.port}", ChannelSecurity()) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            with pytest.raises(grpc.RpcError) as failed:
                list(stub.Debug(orchestrator_pb2.DebugRequest(question="E73-B"), timeout=30))
    finally:
        server.stop(grace_s=0)
    return failed.value


def test_a_refused_upstream_token_is_named_with_the_setting_to_fix(
    tmp_path: Path,
) -> None:
    with ExitStack() as stack:
        retriever = stack.enter_context(upstream("retriever", f"orchestrator {RIGHT}"))
        inference = stack.enter_context(upstream("inference", f"orchestrator {RIGHT}"))
        wrong = debug_error(tmp_path / "wrong", "tok-stale", retriever, inference)
        right = debug_error(tmp_path / "right", RIGHT, retriever, inference)
    assert wrong.code() == grpc.StatusCode.INTERNAL, wrong.details()
    details = wrong.details() or ""
    assert "the retriever service refused this orchestrator's credentials" in details
    assert "RAILDEBUG_ORCHESTRATOR_UPSTREAM_TOKEN" in details
    assert "RAILDEBUG_RETRIEVER_AUTH_TOKENS" in details
    assert "not your credentials" in details
    assert "tok-" not in details
    # With the right token the calls get through, to upstreams that have not loaded yet.
    assert right.code() == grpc.StatusCode.UNAVAILABLE, right.details()
    assert "still loading" in (right.details() or "")


def test_inference_alone_refusing_is_named_too(tmp_path: Path) -> None:
    with ExitStack() as stack:
        retriever = stack.enter_context(upstream("retriever", f"orchestrator {RIGHT}"))
        inference = stack.enter_context(upstream("inference", "orchestrator tok-rotated-987"))
        refused = debug_error(tmp_path, RIGHT, retriever, inference)
    assert refused.code() == grpc.StatusCode.INTERNAL, refused.details()
    details = refused.details() or ""
    assert "the inference service refused this orchestrator's credentials (UNAUTHENTICATED" in (
        details
    )
    assert "RAILDEBUG_ORCHESTRATOR_UPSTREAM_TOKEN" in details
    assert "RAILDEBUG_INFERENCE_AUTH_TOKENS" in details


def test_a_token_without_the_method_in_its_grant_says_which_grant_to_widen(
    tmp_path: Path,
) -> None:
    scoped = f"orchestrator {RIGHT} /raildebug.v1.Inference/Info"
    with ExitStack() as stack:
        retriever = stack.enter_context(upstream("retriever", f"orchestrator {RIGHT}"))
        inference = stack.enter_context(upstream("inference", scoped))
        refused = debug_error(tmp_path, RIGHT, retriever, inference)
    assert refused.code() == grpc.StatusCode.INTERNAL, refused.details()
    details = refused.details() or ""
    assert "the inference service refused this orchestrator's credentials (PERMISSION_DENIED" in (
        details
    )
    assert "may not call /raildebug.v1.Inference/Generate" in details
    assert "widen its grant in the inference service's RAILDEBUG_INFERENCE_AUTH_TOKENS" in details


class AlwaysFull:
    """An inference backend whose queue is always full (what a busy LlamaEngine answers)."""

    def info(self) -> ModelInfo:
        return ModelInfo("stand-in", "gemma3", "Q4_K_M", 4096, 32768, 4, 4, 16, 0, 0, 18, 2, "")

    def token_counts(self, texts: Sequence[str]) -> TokenCounts:
        return TokenCounts(tuple(len(text.split()) for text in texts))

    def generate(
        self,
        request: GenerationRequest,
        is_cancelled: Callable[[], bool] = lambda: False,
        deadline: float | None = None,
    ) -> Iterator[GenerationEvent]:
        raise Overloaded("inference is busy: 4 of 4 slots generating; retry shortly", 3.5)
        yield  # a generator, like the real backends


def test_a_full_inference_is_passed_on_with_its_retry_after(tmp_path: Path) -> None:
    port = free_port()
    server = RailDebugServer(InferenceSettings(port=port), [INFERENCE_SERVICE])
    backend: CoreHolder[GenerationBackend] = CoreHolder("inference backend gguf")
    backend.set(AlwaysFull())
    inference_pb2_grpc.add_InferenceServicer_to_server(
        InferenceServicer(backend), server.grpc_server
    )
    server.start()
    try:  # the retriever is down: the answer would be degraded, but inference refuses first
        refused = debug_error(tmp_path, RIGHT, f"127.0.0.1:{free_port()}", f"127.0.0.1:{port}")
    finally:
        server.stop(grace_s=0)
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.details()
    assert "inference: inference is busy" in (refused.details() or "")
    assert dict(refused.trailing_metadata() or ())["retry-after-ms"] == "3500"
