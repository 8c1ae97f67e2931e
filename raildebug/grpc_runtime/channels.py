"""Client channels with the same keepalive and size limits the servers accept, trace context
propagation, and the caller's credentials (bearer token, TLS / mutual TLS)."""

from __future__ import annotations

import grpc
from opentelemetry.trace import TracerProvider

from raildebug import tracing
from raildebug.grpc_runtime.security import BearerTokenClientInterceptor, ChannelSecurity
from raildebug.settings import ServerSettings

_DEFAULTS = ServerSettings()


def channel_options(max_message_bytes: int = _DEFAULTS.max_message_bytes) -> list[tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", int(_DEFAULTS.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(_DEFAULTS.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_pings_without_data", 0),
        # Reconnect quickly after an upstream restart instead of backing off for minutes.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]


def open_channel(
    address: str,
    security: ChannelSecurity | None = None,
    tracer_provider: TracerProvider | None = None,
) -> grpc.Channel:
    """A channel to `address`; without `security`, RAILDEBUG_CLIENT_* settings decide."""
    security = security or ChannelSecurity.from_client_settings()
    credentials = security.channel_credentials()
    channel = (
        grpc.secure_channel(address, credentials, options=channel_options())
        if credentials is not None
        else grpc.insecure_channel(address, options=channel_options())
    )
    if security.token:
        channel = grpc.intercept_channel(channel, BearerTokenClientInterceptor(security.token))
    return tracing.traced_channel(channel, tracer_provider)
