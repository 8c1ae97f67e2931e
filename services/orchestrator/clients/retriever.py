"""The orchestrator's client of the Retriever service (raildebug.v1.Retriever)."""

from __future__ import annotations

import grpc
from opentelemetry.trace import TracerProvider

from raildebug.contracts import filter_to_wire
from raildebug.domain import PassageFilter
from raildebug.grpc_runtime.channels import open_channel
from raildebug.grpc_runtime.security import ChannelSecurity
from raildebug.v1 import retriever_pb2, retriever_pb2_grpc
from services.orchestrator.clients.errors import upstream_error
from services.orchestrator.models import ContextPassage


class RetrieverClient:
    """ports.PassageSource over the Retriever service's Search."""

    def __init__(
        self,
        address: str,
        alpha: float = 0.5,
        security: ChannelSecurity | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._channel = open_channel(address, security or ChannelSecurity(), tracer_provider)
        self._stub = retriever_pb2_grpc.RetrieverStub(self._channel)
        self.alpha = alpha

    def search(
        self, query: str, k: int, passage_filter: PassageFilter, timeout_s: float
    ) -> list[ContextPassage]:
        request = retriever_pb2.SearchRequest(
            query=query, k=k, alpha=self.alpha, filter=filter_to_wire(passage_filter)
        )
        try:
            response = self._stub.Search(request, timeout=timeout_s)
        except grpc.RpcError as error:
            raise upstream_error(error, "retriever") from error
        return [
            ContextPassage(
                id=p.id,
                text=p.text,
                source=p.source,
                line_start=p.line_start,
                line_end=p.line_end,
                title=p.title,
                kind=p.kind,
                score=p.fused_score,
            )
            for p in response.passages
        ]

    def close(self) -> None:
        self._channel.close()
