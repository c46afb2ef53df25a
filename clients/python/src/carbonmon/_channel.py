"""How the clients connect: TLS and a bearer token as the carbonmon CLI takes them (README, "Security").

CARBONMON_CLIENT_TLS_CA_FILE (set: TLS, the service's certificate checked against it),
CARBONMON_CLIENT_TLS_CERT_FILE + CARBONMON_CLIENT_TLS_KEY_FILE (mutual TLS), CARBONMON_TOKEN_FILE (sent as
"authorization: Bearer <token>" with every call). Arguments override the environment.
"""
from __future__ import annotations

import os
from typing import Optional

import grpc


def _read(path: Optional[str]) -> Optional[bytes]:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds the token to every call (plaintext too: a token on loopback is still a token)."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details):
        metadata = list(details.metadata or []) + [self._header]
        return details._replace(metadata=metadata) if hasattr(details, "_replace") else _Details(details, metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)


class _Details(grpc.ClientCallDetails):
    def __init__(self, details, metadata) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


def open_channel(
    address: str,
    *,
    tls_ca: Optional[str] = None,
    tls_cert: Optional[str] = None,
    tls_key: Optional[str] = None,
    token_file: Optional[str] = None,
) -> grpc.Channel:
    """A channel to `address`: TLS when a CA is given (mutual with a client certificate), else plaintext;
    with the token from `token_file` (else CARBONMON_TOKEN_FILE) on every call."""
    ca = _read(tls_ca or os.environ.get("CARBONMON_CLIENT_TLS_CA_FILE"))
    cert = _read(tls_cert or os.environ.get("CARBONMON_CLIENT_TLS_CERT_FILE"))
    key = _read(tls_key or os.environ.get("CARBONMON_CLIENT_TLS_KEY_FILE"))
    token = _read(token_file or os.environ.get("CARBONMON_TOKEN_FILE"))
    if ca is None:
        channel = grpc.insecure_channel(address)
    else:
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert))
    text = token.decode().strip() if token else ""
    return grpc.intercept_channel(channel, _BearerToken(text)) if text else channel
