"""gRPC transport of the orchestrator service (thin: conversions and lifecycle only)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from opentelemetry.trace import TracerProvider

from raildebug.grpc_runtime.context import absolute_deadline, cancellation_flag
from raildebug.grpc_runtime.server import RailDebugServer
from raildebug.settings import OrchestratorSettings
from raildebug.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from services.orchestrator.assembly import assemble
from services.orchestrator.feedback import FeedbackLog
from services.orchestrator.pipeline import DebugPipeline
from services.orchestrator.wire import event_to_wire, feedback_from_wire, question_from_wire

SERVICE_NAME = orchestrator_pb2.DESCRIPTOR.services_by_name["Orchestrator"].full_name


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServicer):
    def __init__(
        self, pipeline: DebugPipeline, feedback: FeedbackLog, default_deadline_s: float
    ) -> None:
        self._pipeline = pipeline
        self._feedback = feedback
        self._default_deadline_s = default_deadline_s

    def Debug(
        self, request: orchestrator_pb2.DebugRequest, context: grpc.ServicerContext
    ) -> Iterator[orchestrator_pb2.DebugEvent]:
        deadline = absolute_deadline(context, default_s=self._default_deadline_s)
        assert deadline is not None  # a default is always given
        events = self._pipeline.run(
            question_from_wire(request), deadline, is_cancelled=cancellation_flag(context)
        )
        for event in events:
            yield event_to_wire(event)

    def Feedback(
        self, request: orchestrator_pb2.FeedbackRequest, context: grpc.ServicerContext
    ) -> orchestrator_pb2.FeedbackResponse:
        self._feedback.record_feedback(feedback_from_wire(request))
        return orchestrator_pb2.FeedbackResponse(recorded=True)


def build_server(
    settings: OrchestratorSettings, tracer_provider: TracerProvider | None = None
) -> RailDebugServer:
    """The assembled orchestrator (assembly.py) behind the Orchestrator service."""
    server = RailDebugServer(settings, [SERVICE_NAME], tracer_provider)  # may set up tracing
    orchestrator = assemble(settings, tracer_provider)
    servicer = OrchestratorServicer(
        orchestrator.pipeline, orchestrator.feedback, settings.default_deadline_s
    )
    orchestrator_pb2_grpc.add_OrchestratorServicer_to_server(servicer, server.grpc_server)
    return server
