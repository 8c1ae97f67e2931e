"""gRPC transport of the retriever service (thin: conversions and lifecycle only)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from raildebug.grpc_runtime.server import CoreHolder, RailDebugServer
from raildebug.settings import RetrieverSettings
from raildebug.v1 import retriever_pb2, retriever_pb2_grpc
from services.retriever.backends import build_index
from services.retriever.index import RetrievalIndex
from services.retriever.wire import (
    document_from_wire,
    query_from_wire,
    report_to_wire,
    search_result_to_wire,
    stats_to_wire,
)

SERVICE_NAME = retriever_pb2.DESCRIPTOR.services_by_name["Retriever"].full_name


class RetrieverServicer(retriever_pb2_grpc.RetrieverServicer):
    def __init__(self, index: CoreHolder[RetrievalIndex]) -> None:
        self._index = index

    def Search(
        self, request: retriever_pb2.SearchRequest, context: grpc.ServicerContext
    ) -> retriever_pb2.SearchResponse:
        return search_result_to_wire(self._index.get().search(query_from_wire(request)))

    def Ingest(
        self,
        request_iterator: Iterator[retriever_pb2.IngestDocument],
        context: grpc.ServicerContext,
    ) -> retriever_pb2.IngestSummary:
        index = self._index.get()
        documents = (document_from_wire(message) for message in request_iterator)
        return report_to_wire(index.ingest(documents))

    def DeleteSource(
        self, request: retriever_pb2.DeleteSourceRequest, context: grpc.ServicerContext
    ) -> retriever_pb2.DeleteSourceResponse:
        deleted = self._index.get().delete_source(request.source)
        return retriever_pb2.DeleteSourceResponse(passages_deleted=deleted)

    def Stats(
        self, request: retriever_pb2.StatsRequest, context: grpc.ServicerContext
    ) -> retriever_pb2.StatsResponse:
        return stats_to_wire(self._index.get().stats())


def build_server(settings: RetrieverSettings) -> RailDebugServer:
    server = RailDebugServer(settings, [SERVICE_NAME])
    index: CoreHolder[RetrievalIndex] = CoreHolder("retrieval store")
    retriever_pb2_grpc.add_RetrieverServicer_to_server(RetrieverServicer(index), server.grpc_server)
    server.add_core(index, lambda: build_index(settings))
    server.watch_dependency(
        "retrieval store", lambda: index.get().store.ping(), settings.store_check_interval_s
    )
    return server
