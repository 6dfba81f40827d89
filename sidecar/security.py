"""Who may call the sidecar: a shared bearer token, and TLS (optionally mutual) on the listener.

* The token (``security.token`` or ``security.token-file``) is checked on every
  call of every service but health, which Kubernetes probes call without
  credentials. The comparison is constant-time (:func:`hmac.compare_digest`),
  and the token never reaches a log line or an error message.
* TLS credentials come from PEM files and are re-read when a file changes:
  gRPC asks :meth:`CertificateFiles.fetch` for the current configuration at
  each new handshake (``grpc.dynamic_ssl_server_credentials``), so a rotated
  certificate (cert-manager, a renewed Secret) applies to new connections
  without a restart; established connections keep theirs. The files are checked
  (PEM, a key that matches the certificate) before gRPC gets them: at start a
  bad file is a configuration error naming its key, on reload it is skipped.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health

from sidecar.config import SecurityConfig, TlsConfig
from sidecar.errors import ConfigError

log = logging.getLogger(__name__)

AUTHORIZATION = "authorization"
#: Services answered without a token: health, for probes.
EXEMPT_SERVICES = (health.SERVICE_NAME,)


def load_token(security: SecurityConfig) -> str | None:
    """The configured bearer token, from ``token`` or read from ``token-file`` (stripped)."""
    if security.token is not None:
        return security.token.get_secret_value()
    if security.token_file is None:
        return None
    try:
        token = Path(security.token_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"security.token-file: cannot read {security.token_file}: {exc.strerror}"
        ) from None
    if not token:
        raise ConfigError(f"security.token-file: {security.token_file} is empty")
    return token


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses, with UNAUTHENTICATED, every call without ``authorization: Bearer <token>``."""

    def __init__(self, token: str, exempt: tuple[str, ...] = EXEMPT_SERVICES) -> None:
        self._expected = f"Bearer {token}".encode()
        self._exempt = tuple(f"/{service}/" for service in exempt)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = details.method
        if method.startswith(self._exempt):
            return await continuation(details)
        presented = [
            value for key, value in (details.invocation_metadata or ()) if key == AUTHORIZATION
        ]
        if len(presented) == 1:
            value = presented[0]
            given = value.encode() if isinstance(value, str) else bytes(value)
            if hmac.compare_digest(given, self._expected):
                return await continuation(details)
            reason = "wrong bearer token"
        else:
            reason = "missing bearer token" if not presented else "several authorization headers"
        log.warning("refused a call to %s: %s", method, reason)
        handler = await continuation(details)
        return None if handler is None else _refusal(handler, reason)


def _refusal(handler: grpc.RpcMethodHandler, reason: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that answers UNAUTHENTICATED."""
    message = f"{reason}: send 'authorization: Bearer <token>' (the shim's sidecar.token)"

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover - abort raises

    codecs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary, **codecs)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(streaming, **codecs)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(unary, **codecs)
    return grpc.stream_stream_rpc_method_handler(streaming, **codecs)


class CertificateFiles:
    """The TLS files of ``security.tls``, re-read when their modification time or size changes."""

    def __init__(self, tls: TlsConfig) -> None:
        if tls.cert_file is None or tls.key_file is None:
            raise ConfigError("security.tls: cert-file and key-file are required for TLS")
        self._paths = [tls.cert_file, tls.key_file]
        if tls.client_ca_file is not None:
            self._paths.append(tls.client_ca_file)
        self.mutual = tls.client_ca_file is not None
        self._stamp = self._stamps()
        self.initial = self._configuration()

    def _stamps(self) -> tuple[tuple[int, int], ...]:
        stamps = []
        for path in self._paths:
            try:
                st = os.stat(path)
            except OSError as exc:
                raise ConfigError(f"security.tls: cannot read {path}: {exc.strerror}") from None
            stamps.append((st.st_mtime_ns, st.st_size))
        return tuple(stamps)

    def _configuration(self) -> Any:
        try:
            contents = [Path(path).read_bytes() for path in self._paths]
        except OSError as exc:
            raise ConfigError(f"security.tls: cannot read {exc.filename}: {exc.strerror}") from None
        cert, key = contents[0], contents[1]
        _check_pem(self._paths, contents)
        return grpc.ssl_server_certificate_configuration(
            [(key, cert)], root_certificates=contents[2] if self.mutual else None
        )

    def fetch(self) -> Any:
        """gRPC's fetch callback: a new configuration when a file changed, else None."""
        try:
            stamp = self._stamps()
            if stamp == self._stamp:
                return None
            configuration = self._configuration()
        except ConfigError as exc:
            # Half-rotated files: keep serving with the previous certificate.
            log.warning("TLS files not reloaded, keeping the current ones: %s", exc)
            return None
        self._stamp = stamp
        log.info("TLS certificate files changed: reloaded %s", ", ".join(self._paths))
        return configuration

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self.initial, self.fetch, require_client_authentication=self.mutual
        )


_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----\s.+?-----END CERTIFICATE-----", re.S)
_PEM_KEY = re.compile(
    rb"-----BEGIN ([A-Z]+ )?PRIVATE KEY-----\s.+?-----END \1?PRIVATE KEY-----", re.S
)


def _check_pem(paths: list[str], contents: list[bytes]) -> None:
    """Refuse TLS files gRPC could not use, naming the key (gRPC would only say "bind failed").

    The files' contents never reach the message: a private key is a secret.
    """
    keys = ("cert-file", "key-file", "client-ca-file")
    for key, path, data in zip(keys, paths, contents, strict=False):
        pattern = _PEM_KEY if key == "key-file" else _PEM_CERTIFICATE
        what = "private key" if key == "key-file" else "certificate"
        if pattern.search(data) is None:
            raise ConfigError(f"security.tls.{key}: {path} holds no PEM {what}")
    if re.search(rb"ENCRYPTED PRIVATE KEY|Proc-Type: 4,ENCRYPTED", contents[1]):
        raise ConfigError(f"security.tls.key-file: {paths[1]} is encrypted; gRPC needs a plain key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(paths[0], paths[1])
    except ssl.SSLError as exc:
        raise ConfigError(
            f"security.tls: cert-file {paths[0]} and key-file {paths[1]} are not a certificate "
            f"and its private key ({exc.reason or exc.strerror or 'unreadable'})"
        ) from None
    if len(paths) > 2:
        try:
            context.load_verify_locations(cafile=paths[2])
        except ssl.SSLError as exc:
            raise ConfigError(
                f"security.tls.client-ca-file: {paths[2]} is not a PEM CA bundle "
                f"({exc.reason or exc.strerror or 'unreadable'})"
            ) from None


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials | None:
    """Reloading TLS credentials for ``security.tls``, or None when TLS is off."""
    if not tls.enabled:
        return None
    return CertificateFiles(tls).credentials()
