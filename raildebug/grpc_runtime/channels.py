"""Client channels with the same keepalive and size limits the servers accept."""

from __future__ import annotations

import grpc

from raildebug.config import ServerSettings

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


def open_channel(address: str) -> grpc.Channel:
    """Plaintext channel (loopback / in-cluster); TLS arrives with the auth work."""
    return grpc.insecure_channel(address, options=channel_options())
