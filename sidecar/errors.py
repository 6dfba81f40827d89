"""The sidecar's exception hierarchy and its one mapping to gRPC status codes.

Every error the sidecar raises on purpose derives from :class:`SidecarError`.
Each subclass declares the gRPC status it stands for, so turning an error into
an answer is a lookup (``err.status``), done in one place: the service layer.
The status codes are the error contract of ``protos/hzsidecar/v1/mapstore.proto``;
what the shim and Hazelcast do with each is the README's "Errors" table. In
short: INVALID_ARGUMENT means the data can never be written as it is, so
write-behind drops the entry (the member logs it) instead of retrying it;
every other status is retried by write-behind until it succeeds.
"""

from __future__ import annotations

from typing import Self

import grpc


class SidecarError(Exception):
    """Base of every error the sidecar raises on purpose.

    The message names the map, the key and the cause where they are known,
    because it reaches the member's log through the shim.
    """

    status: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, *, map_name: str | None = None) -> None:
        super().__init__(message)
        self.map_name = map_name

    def __str__(self) -> str:
        text = super().__str__()
        if self.map_name is not None and f"map '{self.map_name}'" not in text:
            return f"map '{self.map_name}': {text}"
        return text

    def with_context(self, context: str, *, map_name: str | None = None) -> Self:
        """A new error of the same class and status, its message prefixed by ``context``.

        The original is left as it is (raise the new one ``from`` it): an error may
        be seen by more than one caller, and rebuilding one through its class's
        constructor would misread the arguments of a class with its own
        (``UnknownSchemaError(schema_id)``).
        """
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        Exception.__init__(clone, f"{context}: {Exception.__str__(self)}")
        if map_name is not None:
            clone.map_name = map_name
        return clone


# -- Bad input: never retried (write-behind drops the entry, the member logs it) --


class InvalidRequestError(SidecarError):
    """The request itself is malformed (empty map name, oversized batch...)."""

    status = grpc.StatusCode.INVALID_ARGUMENT


class DecodeError(SidecarError):
    """Bytes that cannot be decoded: corrupt ``Data``, or inconsistent with their schema.

    Raised for one entry; the service reports it for that entry alone: dead-lettered,
    or with ``on-poison: reject`` ENTRY_STATUS_FAILED with this status, which the shim
    takes off the write-behind queue and logs.
    """

    status = grpc.StatusCode.INVALID_ARGUMENT


class SchemaMismatchError(SidecarError):
    """A schema whose id is not the Rabin fingerprint of its type name and fields."""

    status = grpc.StatusCode.INVALID_ARGUMENT


class UnsupportedFieldKindError(SidecarError):
    """A schema names a field kind id that Hazelcast does not define."""

    status = grpc.StatusCode.INVALID_ARGUMENT


# -- Preconditions: an operator can fix them; the member retries meanwhile ---


class UnknownSchemaError(SidecarError):
    """A value references a Compact schema id the sidecar has never been sent."""

    status = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, schema_id: int, *, map_name: str | None = None) -> None:
        super().__init__(
            f"unknown compact schema id {schema_id}: resend the call with the schemas "
            "its values use",
            map_name=map_name,
        )
        self.schema_id = schema_id


class WriteOrderNeeded(SidecarError):
    """A Compact record of a schema whose write order is still pending: claim it, then retry.

    Not a :class:`DecodeError`: the bytes (or the document) are fine, the sidecar
    only has to settle the schema's write order first (see :mod:`sidecar.codec.jsonmap`).
    ``order`` is the full write order seen in the bytes, to claim with
    ``Provider.claim_write_order`` and record with ``SchemaRegistry.set_write_order``;
    None when a document without ``"@order"`` was being encoded: refresh the schemas
    from the provider (another sidecar claimed the order) and encode again.
    FAILED_PRECONDITION if it ever reaches the member, which retries.
    """

    status = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(
        self, schema_id: int, order: tuple[str, ...] | None, *, map_name: str | None = None
    ) -> None:
        if order is None:
            message = (
                f"compact schema id {schema_id} has no write order yet: a document without "
                '"@order" cannot be encoded until it is known (refresh the schemas)'
            )
        else:
            message = (
                f"compact schema id {schema_id} has no write order yet: claim the order "
                f"{list(order)} seen in its bytes, then decode again"
            )
        super().__init__(message, map_name=map_name)
        self.schema_id = schema_id
        self.order = order


class KeyTemplateError(SidecarError):
    """A key lacks a field its route's ``key-template`` names: fix the route, the member retries."""

    status = grpc.StatusCode.FAILED_PRECONDITION


class PersistenceDisabledError(SidecarError):
    """``framework.persistence.enabled`` is false: the sidecar refuses to drop writes silently."""

    status = grpc.StatusCode.FAILED_PRECONDITION


class UnroutedMapError(SidecarError):
    """No route in the configuration matches the map name."""

    status = grpc.StatusCode.FAILED_PRECONDITION


# -- Configuration -------------------------------------------------------------


class ConfigError(SidecarError):
    """The configuration file or environment is wrong; the message names the key."""

    status = grpc.StatusCode.FAILED_PRECONDITION


# -- The store -----------------------------------------------------------------


class StoreUnavailableError(SidecarError):
    """The backing store cannot be reached (database down, pool exhausted).

    Hazelcast's write-behind queue keeps the entries and retries.
    """

    status = grpc.StatusCode.UNAVAILABLE


class StoreTimeoutError(SidecarError):
    """The store did not answer within the call's deadline."""

    status = grpc.StatusCode.DEADLINE_EXCEEDED


class StoreError(SidecarError):
    """The store refused an operation for a reason that retrying alone will not fix.

    INTERNAL: write-behind still retries it, until an operator fixes the cause.
    """

    status = grpc.StatusCode.INTERNAL


class LimitExceededError(SidecarError):
    """More work than a ``limits`` bound allows at the moment: the member retries later."""

    status = grpc.StatusCode.RESOURCE_EXHAUSTED


class EntryTooLargeError(SidecarError):
    """One stored entry is larger than any Load answer may be (``listen.max-message-bytes``).

    Not retried: the same Load would be refused again. The service adds the trailing
    metadata ``hz-sidecar-entry-too-large`` (the entry's size), by which the shim tells
    this refusal from a transient RESOURCE_EXHAUSTED.
    """

    status = grpc.StatusCode.RESOURCE_EXHAUSTED
    #: The trailing metadata key that marks the refusal, for the shim.
    TRAILER = "hz-sidecar-entry-too-large"


class ProviderLoadError(ConfigError):
    """A provider named in the configuration cannot be found or imported."""


# -- Security --------------------------------------------------------------------


class AuthenticationError(SidecarError):
    """The call carries no bearer token, or the wrong one."""

    status = grpc.StatusCode.UNAUTHENTICATED
