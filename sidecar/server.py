"""The sidecar process: provider, gRPC server, health, reflection, graceful shutdown.

Health (``grpc.health.v1``) is SERVING only while the provider answers; a
background task re-checks it every ``listen.health-check-interval-seconds``.
On SIGTERM or SIGINT the health service flips every service to NOT_SERVING
first (so a Kubernetes probe stops routing to it), the server stops accepting
calls and gives the in-flight ones ``listen.graceful-shutdown-seconds`` to
finish, then the provider is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from hzsidecar.v1 import mapstore_pb2 as pb
from hzsidecar.v1 import mapstore_pb2_grpc as pb_grpc
from sidecar.batching import GroupCommit
from sidecar.codec import SchemaRegistry
from sidecar.config import SidecarConfig
from sidecar.errors import ConfigError
from sidecar.providers import create_provider
from sidecar.providers.base import Provider
from sidecar.routing import Router
from sidecar.security import BearerTokenInterceptor, load_token, server_credentials
from sidecar.service import MapStoreService, ServiceLimits
from sidecar.telemetry import Telemetry

log = logging.getLogger(__name__)

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
        self.service = MapStoreService(
            provider=self.provider,
            router=self.router,
            registry=self.registry,
            persistence_enabled=config.persistence.enabled,
            limits=ServiceLimits(
                max_entries_per_call=config.limits.max_entries_per_call,
                max_nesting_depth=config.limits.max_nesting_depth,
            ),
            on_poison=config.on_poison,
            dead_letter_counter=self.telemetry.dead_lettered,
            telemetry=self.telemetry,
            group_commit=(
                GroupCommit(
                    self.provider,
                    max_rows=config.batching.max_rows,
                    max_wait_seconds=config.batching.max_wait_ms / 1000,
                )
                if config.batching.enabled
                else None
            ),
        )
        self._server: grpc.aio.Server | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self.bound_address: str | None = None

    async def start(self) -> None:
        """Open the provider, load persisted schemas, bind and start serving."""
        listen = self.config.listen
        await self.provider.open()
        known = await self.service.load_schemas()
        self.telemetry.start(self.provider)
        options = [
            ("grpc.max_receive_message_length", listen.max_message_bytes),
            ("grpc.max_send_message_length", listen.max_message_bytes),
        ]
        interceptors = self.telemetry.server_interceptors(
            lambda map_name: self.router.route(map_name).kind.value
        )
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
        if unix_path is not None:
            Path(unix_path).parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(unix_path)
        credentials = server_credentials(self.config.security.tls)
        if credentials is None:
            port = server.add_insecure_port(listen.address)
        else:
            port = server.add_secure_port(listen.address, credentials)
        if unix_path is None and port == 0:
            raise ConfigError(f"listen.address: cannot bind {listen.address}")
        await server.start()
        if unix_path is not None:
            os.chmod(unix_path, int(listen.socket_mode, 8))
            self.bound_address = listen.address
        else:
            host = listen.address.rpartition(":")[0]
            self.bound_address = f"{host}:{port}"
        self._server = server
        await self._update_health()
        self._health_task = asyncio.create_task(self._watch_health(), name="hz-sidecar-health")
        log.info(
            "hz-sidecar listening on %s (provider %s, %d known schemas, persistence %s)",
            self.bound_address,
            self.provider.name,
            known,
            "enabled" if self.config.persistence.enabled else "DISABLED",
        )

    async def _update_health(self) -> None:
        available = await self.provider.is_available()
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
        if self._server is not None:
            await self._server.stop(grace)
        await self.provider.close()
        await asyncio.to_thread(self.telemetry.shutdown)
        unix_path = self.config.listen.unix_path
        if unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(unix_path)
        log.info("hz-sidecar stopped")


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
