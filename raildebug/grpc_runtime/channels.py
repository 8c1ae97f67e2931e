"""Client channels with the same keepalive and size limits the servers accept, trace context
propagation, the caller's credentials (bearer token, TLS / mutual TLS) and per-request load
balancing.

Every channel balances calls `round_robin` over all the addresses its target resolves to: with
`dns:///inference.ns.svc:50053` naming a headless Service (one A record per ready pod) each call
goes to the next pod, where a ClusterIP would pin the whole channel to one. Servers close
connections after `max_connection_age_s`, so the channel re-resolves and finds new replicas.
"""

from __future__ import annotations

import json

import grpc
from opentelemetry.trace import TracerProvider

from raildebug.grpc_runtime.security import BearerTokenClientInterceptor, ChannelSecurity
from raildebug.observability import tracing
from raildebug.settings import KEEPALIVE_TIME_S, KEEPALIVE_TIMEOUT_S, MAX_MESSAGE_BYTES

# Spread calls over every resolved address; a DNS TXT service config may not change that.
SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


def channel_options(max_message_bytes: int = MAX_MESSAGE_BYTES) -> list[tuple[str, int | str]]:
    """The servers' default limits (raildebug.settings constants; no environment is read)."""
    return [
        ("grpc.service_config", SERVICE_CONFIG),
        ("grpc.service_config_disable_resolution", 1),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", int(KEEPALIVE_TIME_S * 1000)),
        ("grpc.keepalive_timeout_ms", int(KEEPALIVE_TIMEOUT_S * 1000)),
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
