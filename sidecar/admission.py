"""Admission: how much work the sidecar takes on at once, and how many schemas it keeps.

A member retries a MapStore call that fails with RESOURCE_EXHAUSTED (write-behind
keeps the entries and flushes them again; a load is tried again), so the cheapest
answer to more work than the process has memory for is a refusal, at once and
before anything is decoded, naming the limit that was reached. Bounded here, from
the ``limits`` block of the configuration:

* ``max-in-flight-bytes``: the bytes of the entries (keys and values) and schemas
  of the Store, Delete and Load calls being served. A Store that would take them
  past the bound is refused, unless it is the only call (``listen.max-message-bytes``
  bounds its size; a bound below one legal message would refuse that message
  forever). Load and Delete calls carry keys only: they are counted, never refused
  for bytes, because a refused load fails the application's ``get`` (Hazelcast
  retries write-behind, not loads).
* ``max-calls-in-flight``: Store, Delete and Load calls being served. Health
  checks and the ``LoadAllKeys`` stream are not counted.
* ``max-schemas-per-call`` and ``max-schemas``: the schemas a call carries, and
  every schema the sidecar knows. Schemas are persisted and reloaded at each
  start, so an unbounded table costs memory and start-up time for good.
* ``max-fields-per-schema``: a schema with more fields is refused before it is
  built (a field name it repeats makes it malformed instead: INVALID_ARGUMENT).

Each is refused with RESOURCE_EXHAUSTED, never INVALID_ARGUMENT: a call over a
bound the operator can raise must stay in the member's write-behind queue until
then, not be dropped from it as malformed.

gRPC receives and parses a request before the service sees it, so a refused call
has cost its receive and parse (about twice its size, for the moment it takes to
refuse it); what it never gets is the decoding, whose memory (several times the
request) is what these bounds hold.

The object is created once per process (:class:`sidecar.server.Sidecar`) and used
from the event loop's thread only: it holds no lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from hzsidecar.v1 import mapstore_pb2 as pb
from sidecar.codec.schemas import check_field_names
from sidecar.config import LimitsConfig
from sidecar.errors import LimitExceededError, SidecarError

MIB = 1024 * 1024

#: The requests admission sizes.
Request = pb.StoreRequest | pb.DeleteRequest | pb.LoadRequest


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """The bounds (defaults: those of :class:`sidecar.config.LimitsConfig`)."""

    max_in_flight_bytes: int = 64 * MIB
    max_calls_in_flight: int = 64
    max_schemas_per_call: int = 1_000
    max_schemas: int = 100_000
    max_fields_per_schema: int = 10_000

    @classmethod
    def from_config(cls, limits: LimitsConfig) -> AdmissionLimits:
        return cls(
            max_in_flight_bytes=limits.max_in_flight_bytes,
            max_calls_in_flight=limits.max_calls_in_flight,
            max_schemas_per_call=limits.max_schemas_per_call,
            max_schemas=limits.max_schemas,
            max_fields_per_schema=limits.max_fields_per_schema,
        )


def request_bytes(request: Request) -> int:
    """The payload of a request: its keys, values and schemas, close to its wire size.

    Summed rather than ``request.ByteSize()``, which serializes the whole message
    again (as long and as large as the request itself).
    """
    if isinstance(request, pb.StoreRequest):
        size = sum(len(entry.key) + len(entry.value) for entry in request.entries)
        return size + sum(schema.ByteSize() for schema in request.schemas)
    return sum(len(key) for key in request.keys)


def _size(count: int) -> str:
    return f"{count / MIB:.1f} MiB" if count >= MIB else f"{count} bytes"


class Admission:
    """Counts the calls and bytes in flight; refuses what a bound does not allow."""

    def __init__(self, limits: AdmissionLimits | None = None) -> None:
        self.limits = limits or AdmissionLimits()
        self._calls = 0
        self._bytes = 0
        # New schemas being persisted: counted against max-schemas until registered.
        self._pending_schemas = 0

    @classmethod
    def from_config(cls, limits: LimitsConfig) -> Admission:
        return cls(AdmissionLimits.from_config(limits))

    @property
    def calls_in_flight(self) -> int:
        return self._calls

    @property
    def bytes_in_flight(self) -> int:
        return self._bytes

    @contextlib.contextmanager
    def admit(self, request: Request, operation: str, map_name: str) -> Iterator[None]:
        """Count the call in flight while the block runs, or refuse it at once.

        Raises:
            LimitExceededError: ``max-calls-in-flight`` calls are being served, or
                this Store's bytes would take the bytes in flight past
                ``max-in-flight-bytes`` (never when it is the only call).
        """
        limits = self.limits
        if self._calls >= limits.max_calls_in_flight:
            raise LimitExceededError(
                f"{operation} refused: {self._calls} calls in flight reach "
                f"limits.max-calls-in-flight ({limits.max_calls_in_flight}); retry later",
                map_name=map_name,
            )
        size = request_bytes(request)
        store = isinstance(request, pb.StoreRequest)
        if store and self._calls and self._bytes + size > limits.max_in_flight_bytes:
            raise LimitExceededError(
                f"{operation} refused: its {_size(size)} with the {_size(self._bytes)} of the "
                f"{self._calls} calls in flight exceed limits.max-in-flight-bytes "
                f"({limits.max_in_flight_bytes}); retry later",
                map_name=map_name,
            )
        self._calls += 1
        self._bytes += size
        try:
            yield
        finally:
            self._calls -= 1
            self._bytes -= size

    def check_call_schemas(self, schemas: Sequence[pb.Schema], map_name: str) -> None:
        """Bound the schemas of one call, before any of them is built.

        Raises:
            LimitExceededError: more than ``max-schemas-per-call`` schemas.
            LimitExceededError: a schema with more than ``max-fields-per-schema`` fields.
            SchemaMismatchError: such a schema also repeats a field name.
        """
        limits = self.limits
        if len(schemas) > limits.max_schemas_per_call:
            raise LimitExceededError(
                f"{len(schemas)} schemas in one call exceed limits.max-schemas-per-call "
                f"({limits.max_schemas_per_call})",
                map_name=map_name,
            )
        for schema in schemas:
            if len(schema.fields) > limits.max_fields_per_schema:
                # A malformed schema is refused as such (the member does not retry it),
                # whatever its size; the check is linear.
                try:
                    check_field_names(schema.type_name, (field.name for field in schema.fields))
                except SidecarError as exc:
                    context = f"schema {schema.type_name!r} (id {schema.schema_id})"
                    raise exc.with_context(context, map_name=map_name) from exc
                raise LimitExceededError(
                    f"compact type {schema.type_name!r} (schema id {schema.schema_id}) has "
                    f"{len(schema.fields)} fields, more than limits.max-fields-per-schema "
                    f"({limits.max_fields_per_schema})",
                    map_name=map_name,
                )

    @contextlib.contextmanager
    def new_schemas(self, count: int, known: int, map_name: str) -> Iterator[None]:
        """Reserve room for ``count`` new schemas beside the ``known`` ones while they are
        persisted and registered (the block), or refuse them.

        Raises:
            LimitExceededError: they would take the schemas past ``max-schemas``.
        """
        if not count:
            yield
            return
        total = known + self._pending_schemas + count
        if total > self.limits.max_schemas:
            raise LimitExceededError(
                f"{count} new schemas beside the {known + self._pending_schemas} known "
                f"exceed limits.max-schemas ({self.limits.max_schemas})",
                map_name=map_name,
            )
        self._pending_schemas += count
        try:
            yield
        finally:
            self._pending_schemas -= count
