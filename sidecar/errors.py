"""The sidecar's exception hierarchy and its one mapping to gRPC status codes.

Every error the sidecar raises on purpose derives from :class:`SidecarError`.
Each subclass declares the gRPC status it stands for, so turning an error into
an answer is a lookup (``err.status``), done in one place: the service layer.
The status codes are the error contract of ``protos/hzsidecar/v1/mapstore.proto``;
the shim turns them into exceptions Hazelcast understands (write-behind retries
on everything but INVALID_ARGUMENT).
"""

from __future__ import annotations

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


# -- Bad input: never retried ------------------------------------------------


class InvalidRequestError(SidecarError):
    """The request itself is malformed (empty map name, oversized batch...)."""

    status = grpc.StatusCode.INVALID_ARGUMENT


class DecodeError(SidecarError):
    """Bytes that cannot be decoded: corrupt ``Data``, or inconsistent with their schema.

    Raised for one entry; the service reports it for that entry alone.
    """

    status = grpc.StatusCode.INVALID_ARGUMENT


class SchemaMismatchError(SidecarError):
    """A schema whose id is not the Rabin fingerprint of its type name and fields."""

    status = grpc.StatusCode.INVALID_ARGUMENT


class UnsupportedFieldKindError(SidecarError):
    """A schema names a field kind id that Hazelcast does not define."""

    status = grpc.StatusCode.INVALID_ARGUMENT


# -- Preconditions: the caller can fix them ----------------------------------


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
    """The store refused an operation for a reason that retrying will not fix."""

    status = grpc.StatusCode.INTERNAL


class ProviderLoadError(ConfigError):
    """A provider named in the configuration cannot be found or imported."""


# -- Security --------------------------------------------------------------------


class AuthenticationError(SidecarError):
    """The call carries no bearer token, or the wrong one."""

    status = grpc.StatusCode.UNAUTHENTICATED
