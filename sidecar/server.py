"""The sidecar process: provider, gRPC server, health, reflection, graceful shutdown.

Health (``grpc.health.v1``) is SERVING only while the provider answers; a
background task re-checks it every ``listen.health-check-interval-seconds``,
and a provider that does not answer within ``listen.health-check-timeout-seconds``
is NOT_SERVING (a hung store must not look healthy because its probe is stuck).
On SIGTERM or SIGINT the health service flips every service to NOT_SERVING
first (so a Kubernetes probe stops routing to it), the server stops accepting
calls and gives the in-flight ones ``listen.graceful-shutdown-seconds`` to
finish, then the provider is closed.

A Unix socket path (``unix://PATH``) is only ever taken from nobody: a path that
exists and is not a socket is refused, as is a socket another process listens
on; a stale socket (nobody listening) is replaced. On shutdown the socket is
removed only if it is still the one this process bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import secrets
import signal
import socket
import stat
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from hzsidecar.v1 import mapstore_pb2 as pb
from hzsidecar.v1 import mapstore_pb2_grpc as pb_grpc
from sidecar.admission import Admission
from sidecar.codec import SchemaRegistry, accel
from sidecar.config import SidecarConfig
from sidecar.errors import ConfigError
from sidecar.providers import create_provider
from sidecar.providers.base import Provider
from sidecar.routing import Router
from sidecar.security import BearerTokenInterceptor, load_token, server_credentials
from sidecar.service import MapStoreService, ServiceLimits
from sidecar.telemetry import Telemetry
from sidecar.writer import Writer

log = logging.getLogger(__name__)

#: The most a Call of the Calls stream adds around its request: id, deadline,
#: cluster size, a traceparent (55 characters) and the request's tag and length.
CALL_OVERHEAD_BYTES = 128

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["MapStore"].full_name


class Sidecar:
    """One running sidecar: ``await start()``, then ``await stop()`` (idempotent)."""

    def __init__(self, config: SidecarConfig, provider: Provider | None = None) -> None:
        self.config = config
        self.provider = provider or create_provider(config.provider.name, config.provider.settings)
        self.health = health.aio.HealthServicer()
        self.registry = SchemaRegistry()
        self.router = Router(config.maps, config.persistence)
        self.telemetry = Telemetry.from_config(config.telemetry)
        # The one write path (sidecar.writer); group commit per the `batching` block.
        self.writer = Writer(
            self.provider,
            group_commit=config.batching.enabled,
            max_rows=config.batching.max_rows,
            max_wait_seconds=config.batching.max_wait_ms / 1000,
            on_retry=self.telemetry.retry,
        )
        # The provider's own retries (a page of load_all_keys, its migrations) are the
        # writer's policy, bound to the provider's idea of a transient error.
        self.provider.use_retry(self.writer.retrying.run)
        self.service = MapStoreService(
            provider=self.provider,
            router=self.router,
            registry=self.registry,
            persistence_enabled=config.persistence.enabled,
            limits=ServiceLimits(
                max_entries_per_call=config.limits.max_entries_per_call,
                max_nesting_depth=config.limits.max_nesting_depth,
                max_response_bytes=config.listen.max_message_bytes,
            ),
            on_poison=config.on_poison,
            telemetry=self.telemetry,
            writer=self.writer,
            admission=Admission.from_config(config.limits),
        )
        self._server: grpc.aio.Server | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._socket_identity: tuple[int, int] | None = None  # (st_dev, st_ino) once bound
        self.bound_address: str | None = None

    async def start(self) -> None:
        """Open the provider, load persisted schemas, bind and start serving."""
        listen = self.config.listen
        accel.use(self.config.codec.accelerator)  # `required` without the extension: ConfigError
        await self.provider.open()
        known = await self.service.load_schemas()
        # A provider without a pool answers None: no pool gauges then.
        has_pool = self.provider.pool_stats() is not None
        self.telemetry.start(self.provider.name, self._pool_stats if has_pool else None)
        options = [
            # A call of the Calls stream is its request plus an id, a deadline, a trace
            # context and a cluster size: the same request fits either way.
            ("grpc.max_receive_message_length", listen.max_message_bytes + CALL_OVERHEAD_BYTES),
            ("grpc.max_send_message_length", listen.max_message_bytes),
            # gRPC sets SO_REUSEPORT by default: a second sidecar on the same port would
            # then bind too and silently share the calls.
            ("grpc.so_reuseport", 0),
        ]
        # The token is checked before the service sees the call, so unauthenticated
        # calls create no metric series (nor spans): the service records what it serves.
        interceptors: list[grpc.aio.ServerInterceptor] = []
        token = load_token(self.config.security)
        if token is not None:
            interceptors.append(BearerTokenInterceptor(token))
        server = grpc.aio.server(options=options, interceptors=interceptors)
        pb_grpc.add_MapStoreServicer_to_server(self.service, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        unix_path = listen.unix_path
        bind_address = listen.address
        if unix_path is not None:
            _claim_socket_path(unix_path)
            # gRPC unlinks whatever socket is at its path when it stops, even one another
            # process put there since: it binds a private name, published by a hard link.
            private = str(Path(unix_path).with_name(f".hzs-{secrets.token_hex(4)}"))
            bind_address = f"unix://{private}"
        credentials = server_credentials(self.config.security.tls)
        try:
            if credentials is None:
                port = server.add_insecure_port(bind_address)
            else:
                port = server.add_secure_port(bind_address, credentials)
        except RuntimeError:  # gRPC says only "Failed to bind"; find out why
            raise ConfigError(_bind_failure(listen.address, bind_address)) from None
        if unix_path is None and port == 0:
            raise ConfigError(_bind_failure(listen.address, bind_address))
        if unix_path is not None:
            os.chmod(private, int(listen.socket_mode, 8))
            self._socket_identity = _publish_socket(private, unix_path)
        await server.start()
        if unix_path is not None:
            self.bound_address = listen.address
        else:
            host = listen.address.rpartition(":")[0]
            self.bound_address = f"{host}:{port}"
        self._server = server
        await self._update_health()
        self._health_task = asyncio.create_task(self._watch_health(), name="hz-sidecar-health")
        # What exists now (modules, configuration, pool, schemas, gRPC) lives as long as the
        # process: move it out of the cyclic collector's reach, so that the young objects of
        # every call do not make each full collection walk it all again. Measured on the
        # Store path: about a quarter of the sidecar's CPU per entry (README, Performance).
        gc.freeze()
        log.info(
            "hz-sidecar listening on %s (provider %s, %d known schemas, persistence %s; %s)",
            self.bound_address,
            self.provider.name,
            known,
            "enabled" if self.config.persistence.enabled else "DISABLED",
            accel.status(),
        )

    async def _update_health(self) -> None:
        timeout = self.config.listen.health_check_timeout_seconds
        try:
            available = await asyncio.wait_for(self.provider.is_available(), timeout)
        except TimeoutError:
            log.warning(
                "provider %s did not answer the health probe within %.1f s: NOT_SERVING",
                self.provider.name,
                timeout,
            )
            available = False
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if available
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self.health.set("", status)
        await self.health.set(SERVICE_NAME, status)

    async def _watch_health(self) -> None:
        interval = self.config.listen.health_check_interval_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                await self._update_health()
            except Exception:  # a failed probe must not end the watcher
                log.exception("health check failed")

    def _pool_stats(self) -> Mapping[str, int]:
        return self.provider.pool_stats() or {}

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        """Graceful shutdown: NOT_SERVING, finish in-flight calls, close the provider."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.config.listen.graceful_shutdown_seconds
        log.info("hz-sidecar stopping (grace %.1f s)", grace)
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        await self.health.enter_graceful_shutdown()
        # The shim's streams stop taking calls and end once those read are answered;
        # the server's grace then covers unary calls only.
        self.service.streams.close()
        if self._server is not None:
            await self._server.stop(grace)
        await self.writer.close()
        await self.provider.close()
        await asyncio.to_thread(self.telemetry.shutdown)
        unix_path = self.config.listen.unix_path
        if unix_path is not None and self._socket_identity is not None:
            _release_socket_path(unix_path, self._socket_identity)
        log.info("hz-sidecar stopped")


def _claim_socket_path(path: str) -> None:
    """Make ``path`` free for this sidecar's socket, or refuse (ConfigError naming the key).

    Only a stale socket (its listener gone: connecting is refused) is removed; a
    regular file (the sidecar's own database, say) or a live socket is never touched.
    """
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"listen.address: unix://{path}: {exc.strerror}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise ConfigError(
            f"listen.address: unix://{path} exists and is not a socket; it is left as it is "
            "(choose another path, or remove it if it is not needed)"
        )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            pass  # nobody listens: a socket left by a process that died
        except OSError as exc:
            raise ConfigError(
                f"listen.address: unix://{path} is a socket that cannot be probed "
                f"({exc.strerror or exc}); it is left as it is"
            ) from None
        else:
            raise ConfigError(
                f"listen.address: another process listens on unix://{path} "
                "(another sidecar?); stop it or choose another path"
            )
    log.info("removing the stale socket unix://%s (nobody listens on it)", path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _publish_socket(private: str, path: str) -> tuple[int, int]:
    """Give the socket bound at ``private`` its public ``path``; its (st_dev, st_ino).

    A hard link never replaces what appeared at ``path`` since it was claimed (another
    sidecar starting at the same moment): that is refused instead.
    """
    taken = ConfigError(
        f"listen.address: unix://{path} was taken by another process while this sidecar started"
    )
    try:
        try:
            os.link(private, path)
        except FileExistsError:
            raise taken from None
        except OSError:  # a filesystem without hard links: rename, unless the path was taken
            if os.path.lexists(path):
                raise taken from None
            os.rename(private, path)
        st = os.lstat(path)
    except OSError as exc:
        raise ConfigError(f"listen.address: unix://{path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(private)
    return st.st_dev, st.st_ino


def _release_socket_path(path: str, identity: tuple[int, int]) -> None:
    """Remove the socket at ``path`` if it is still the one this process bound."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if (st.st_dev, st.st_ino) != identity:
        log.warning("unix://%s is no longer this sidecar's socket: left in place", path)
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


_BIND_HINTS = {
    errno.EADDRINUSE: "another process listens on this port",
    errno.EADDRNOTAVAIL: "the address is not one of this host's",
    errno.EACCES: "a port below 1024 needs privileges",
}


def _bind_failure(address: str, bound: str) -> str:
    """Why gRPC could not bind ``bound`` (for ``address``), found by binding it ourselves."""
    if bound.startswith("unix://"):
        path = bound.removeprefix("unix://")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(path)
            except OSError as exc:
                return f"listen.address: cannot create the socket {address}: {exc.strerror or exc}"
        with contextlib.suppress(OSError):
            os.unlink(path)
        return f"listen.address: cannot listen on {address}"
    host, _, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    try:
        candidates = socket.getaddrinfo(
            host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, ValueError) as exc:
        return f"listen.address: cannot listen on {address}: unknown host ({exc})"
    for family, kind, proto, _, sockaddr in candidates:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                hint = _BIND_HINTS.get(exc.errno or 0)
                return f"listen.address: cannot listen on {address}: {exc.strerror}" + (
                    f" ({hint})" if hint else ""
                )
    return f"listen.address: cannot listen on {address}"


async def serve(
    config: SidecarConfig, *, on_started: Callable[[Sidecar], Awaitable[None]] | None = None
) -> None:
    """Run a sidecar until SIGTERM or SIGINT, then shut it down gracefully."""
    sidecar = Sidecar(config)
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    try:
        await sidecar.start()
        if on_started is not None:
            await on_started(sidecar)
        await stop_requested.wait()
        log.info("signal received")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await sidecar.stop()
