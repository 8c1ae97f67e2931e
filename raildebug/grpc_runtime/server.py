"""Lifecycle every RailDebug server shares: bind, health, reflection, background load, drain."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from typing import Generic, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.trace import TracerProvider

from raildebug.errors import NotReady
from raildebug.grpc_runtime.auth import BearerTokenInterceptor, load_grants
from raildebug.grpc_runtime.decoding import RequestDecodingInterceptor
from raildebug.grpc_runtime.interceptors import ErrorMappingInterceptor
from raildebug.grpc_runtime.rate_limit import (
    RateLimitInterceptor,
    auth_failure_buckets,
    buckets_for,
)
from raildebug.grpc_runtime.security import server_credentials
from raildebug.observability import tracing
from raildebug.observability.logging import get_logger
from raildebug.observability.metrics import serve_metrics
from raildebug.settings import ServerSettings

log = get_logger(__name__)

CoreT = TypeVar("CoreT")
# The grpc.health.v1 service name liveness probes ask for: SERVING from start to drain, whatever
# the cores and dependencies report on "" and the service names.
LIVENESS_SERVICE = "raildebug.liveness"


class CoreHolder(Generic[CoreT]):
    """Holds a service core that loads in the background; RPCs before then get UNAVAILABLE."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._core: CoreT | None = None
        self._failure: str | None = None

    def set(self, core: CoreT) -> None:
        self._core = core

    def fail(self, reason: str) -> None:
        self._failure = reason

    def get(self) -> CoreT:
        if self._core is not None:
            return self._core
        if self._failure is not None:
            raise NotReady(f"{self.what} failed to load: {self._failure}")
        raise NotReady(f"{self.what} is still loading; retry when health reports SERVING")

    @property
    def loaded(self) -> bool:
        return self._core is not None


class RailDebugServer:
    """A grpc.Server with our defaults. Health stays NOT_SERVING until `mark_serving()`.

    Every RPC is traced (continuing the caller's trace), mapped from domain errors, and, when
    configured, authenticated by bearer token and rate limited per client; the port serves TLS
    or mutual TLS when certificates are configured. With `health_port`, a second, plaintext
    server answers grpc.health.v1 (and nothing else) from the same health state, for probes
    that cannot present TLS. `tracer_provider` defaults to the process-wide one that OTEL_*
    variables configure.
    """

    def __init__(
        self,
        settings: ServerSettings,
        service_names: Sequence[str],
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.settings = settings
        self._service_names = list(service_names)
        self._service_label = self._service_names[0].rsplit(".", 1)[-1].lower()
        self._credentials = server_credentials(settings)
        if tracer_provider is None:
            tracing.configure_tracing(f"raildebug-{self._service_label}")
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="rpc"),
            interceptors=_interceptors(settings, tracer_provider),
            options=_server_options(settings),
            maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
        )
        self._health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        # Liveness is the process answering, not its dependencies: a store server that is down
        # takes a replica out of rotation (readiness), it must not get it restarted.
        self._health.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection(
            [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server
        )
        self._health_server: grpc.Server | None = None
        if settings.health_port:
            self._health_server = grpc.server(
                futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="health"),
                options=_HEALTH_SERVER_OPTIONS,
                maximum_concurrent_rpcs=_HEALTH_MAX_CONCURRENT_RPCS,
            )
            health_pb2_grpc.add_HealthServicer_to_server(self._health, self._health_server)
        self.health_port = 0
        self._stopped = threading.Event()
        self._loaders: list[Callable[[], threading.Thread]] = []
        self._load_lock = threading.Lock()
        self._pending_loads = 0
        self.port = 0

    @property
    def grpc_server(self) -> grpc.Server:
        return self._server

    def start(self) -> int:
        self.port = (
            self._server.add_secure_port(self.settings.address, self._credentials)
            if self._credentials is not None
            else self._server.add_insecure_port(self.settings.address)
        )
        if self.port == 0:
            raise RuntimeError(f"cannot bind {self.settings.address}: port in use or bad address")
        if self._health_server is not None:
            health_address = f"{self.settings.host}:{self.settings.health_port}"
            self.health_port = self._health_server.add_insecure_port(health_address)
            if self.health_port == 0:
                raise RuntimeError(f"cannot bind health_port {health_address}: port in use")
            self._health_server.start()
        self._server.start()
        serve_metrics(self._service_label, self.settings.host, self.settings.metrics_port)
        log.info(
            "listening",
            address=f"{self.settings.host}:{self.port}",
            tls=bool(self._credentials),
            health_port=self.health_port or None,
        )
        for start_loading in self._loaders:
            start_loading()
        if not self._loaders:
            self.mark_serving()
        return self.port

    def add_core(self, holder: CoreHolder[CoreT], load: Callable[[], CoreT]) -> None:
        """Load a core once the port is bound; health turns SERVING when all have loaded."""
        self._pending_loads += 1
        self._loaders.append(lambda: self._load_in_background(holder, load))

    def _load_in_background(
        self, holder: CoreHolder[CoreT], load: Callable[[], CoreT]
    ) -> threading.Thread:
        """Run the slow model/store load while health already answers NOT_SERVING."""

        def run() -> None:
            try:
                core = load()
            except Exception as error:  # keep answering health, and say why we are not ready
                log.exception("load failed", component=holder.what)
                holder.fail(f"{type(error).__name__}: {error}")
                return
            holder.set(core)
            log.info("ready", component=holder.what)
            with self._load_lock:
                self._pending_loads -= 1
                if self._pending_loads == 0:
                    self.mark_serving()

        thread = threading.Thread(target=run, name=f"load-{holder.what}", daemon=True)
        thread.start()
        return thread

    def watch_dependency(
        self, what: str, check: Callable[[], None], interval_s: float
    ) -> threading.Thread:
        """Once every core has loaded, run `check` every `interval_s`: health reports
        NOT_SERVING while it raises (a store server gone) and SERVING again once it passes, so
        probes and balancers stop sending work a replica cannot do and resume by themselves."""

        def run() -> None:
            healthy = True
            while not self._stopped.wait(interval_s):
                if self._pending_loads:
                    continue
                try:
                    check()
                except Exception as error:
                    if healthy:
                        log.warning("dependency down", dependency=what, error=str(error)[:300])
                        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
                    healthy = False
                    continue
                if not healthy and not self._stopped.is_set():
                    log.info("dependency back", dependency=what)
                    self._set_health(health_pb2.HealthCheckResponse.SERVING)
                healthy = True

        thread = threading.Thread(target=run, name=f"watch-{what}", daemon=True)
        thread.start()
        return thread

    def mark_serving(self) -> None:
        self._set_health(health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace_s: float | None = None) -> None:
        """Drain: report NOT_SERVING, refuse new RPCs, give in-flight ones `grace_s` to finish."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._health.enter_graceful_shutdown()
        grace = self.settings.drain_grace_s if grace_s is None else grace_s
        log.info("draining", grace_s=grace)
        self._server.stop(grace).wait()
        if self._health_server is not None:  # probes saw NOT_SERVING for the whole drain
            self._health_server.stop(0).wait()
        log.info("stopped")

    def install_signal_handlers(self) -> None:
        def on_signal(signum: int, _frame: object) -> None:
            log.info("signal", signal=signal.Signals(signum).name)
            threading.Thread(target=self.stop, name="drain", daemon=True).start()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def wait(self) -> None:
        self._server.wait_for_termination()

    def _set_health(self, status: int) -> None:
        for name in ["", *self._service_names]:
            self._health.set(name, status)


def _interceptors(
    settings: ServerSettings, tracer_provider: TracerProvider | None
) -> list[grpc.ServerInterceptor]:
    """Outermost first: the trace span sees everything, rejections get a status and a log;
    requests are parsed after that (a bad body is INVALID_ARGUMENT) and before the guards."""
    chain: list[grpc.ServerInterceptor] = [
        tracing.server_interceptor(tracer_provider),
        ErrorMappingInterceptor(),
        RequestDecodingInterceptor(),
    ]
    grants = load_grants(settings)
    if grants:
        chain.append(BearerTokenInterceptor(grants, auth_failure_buckets(settings)))
    if settings.rate_limit_per_s > 0:
        chain.append(RateLimitInterceptor(buckets_for(settings), settings.rate_limit_key))
    return chain


# The health-only port answers kubelet probes: a few small calls at a time.
_HEALTH_MAX_CONCURRENT_RPCS = 16
_HEALTH_SERVER_OPTIONS = [("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 4096)]


def _server_options(settings: ServerSettings) -> list[tuple[str, int]]:
    return [
        *_connection_age_options(settings),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.keepalive_time_ms", int(settings.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(settings.keepalive_timeout_s * 1000)),
        (
            "grpc.http2.min_ping_interval_without_data_ms",
            int(settings.min_client_ping_interval_s * 1000),
        ),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.so_reuseport", 0),
    ]


def _connection_age_options(settings: ServerSettings) -> list[tuple[str, int]]:
    """GOAWAY each connection after max_connection_age_s (gRPC adds +-10% jitter): the client
    reconnects and re-resolves its target, so new replicas behind a headless Service get
    traffic; in-flight RPCs keep max_connection_age_grace_s."""
    if settings.max_connection_age_s <= 0:
        return []
    return [
        ("grpc.max_connection_age_ms", int(settings.max_connection_age_s * 1000)),
        ("grpc.max_connection_age_grace_ms", int(settings.max_connection_age_grace_s * 1000)),
    ]
