"""TLS / mutual-TLS credentials for servers and channels, and the client side of bearer tokens."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from raildebug.grpc_runtime.auth import AUTHORIZATION_METADATA
from raildebug.settings import ClientSettings, ServerSettings


def server_credentials(settings: ServerSettings) -> grpc.ServerCredentials | None:
    """None serves plaintext; a client CA makes client certificates mandatory (mTLS)."""
    cert, key = settings.tls_cert_file, settings.tls_key_file
    client_ca = settings.tls_client_ca_file
    if cert is None and key is None:
        if client_ca is not None:
            raise ValueError("tls_client_ca_file needs tls_cert_file and tls_key_file as well")
        return None
    if cert is None or key is None:
        raise ValueError("TLS needs both tls_cert_file and tls_key_file")
    return grpc.ssl_server_credentials(
        [(_read(key, "tls_key_file"), _read(cert, "tls_cert_file"))],
        root_certificates=_read(client_ca, "tls_client_ca_file") if client_ca else None,
        require_client_auth=client_ca is not None,
    )


@dataclass(frozen=True)
class ChannelSecurity:
    """What a client presents: an optional bearer token, optional TLS (with a client cert)."""

    token: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @classmethod
    def from_client_settings(cls, settings: ClientSettings | None = None) -> ChannelSecurity:
        settings = settings or ClientSettings()
        return cls(
            token=settings.token.get_secret_value() if settings.token else None,
            ca_file=settings.ca_file,
            cert_file=settings.cert_file,
            key_file=settings.key_file,
        )

    def __repr__(self) -> str:  # keep the token out of logs and tracebacks
        return f"ChannelSecurity(tls={self.ca_file is not None}, token={self.token is not None})"

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        if self.ca_file is None:
            if self.cert_file is not None:
                raise ValueError("a client certificate needs the server's CA file (TLS) as well")
            return None
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("mutual TLS needs both the client certificate and its key")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file, "CA file"),
            private_key=_read(self.key_file, "client key") if self.key_file else None,
            certificate_chain=_read(self.cert_file, "client cert") if self.cert_file else None,
        )


class BearerTokenClientInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds `authorization: Bearer <token>` to every call of a channel."""

    def __init__(self, token: str) -> None:
        self._header = (AUTHORIZATION_METADATA, f"Bearer {token}")

    def _with_token(self, details: Any) -> Any:
        metadata = [*(details.metadata or ()), self._header]
        return details._replace(metadata=metadata)

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(
        self, continuation: Callable[..., Any], details: Any, requests: Any
    ) -> Any:
        return continuation(self._with_token(details), requests)

    def intercept_stream_stream(
        self, continuation: Callable[..., Any], details: Any, requests: Any
    ) -> Any:
        return continuation(self._with_token(details), requests)


def _read(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist")
    return path.read_bytes()
