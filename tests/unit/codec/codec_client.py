"""Compact bytes produced by hazelcast-python-client's own serialization service.

The client writes a record through ``DefaultCompactWriter`` driven by a
``CompactSerializer``; these helpers make one serializer per test type, whose
``write`` calls the client's ``write_<kind>`` methods in the order given (so a
test can also reproduce a Java serializer that does not write in name order).
"""

from __future__ import annotations

from typing import Any

from hazelcast.config import Config
from hazelcast.serialization.api import CompactSerializer, FieldKind
from hazelcast.serialization.compact import CompactStreamSerializer
from hazelcast.serialization.service import SerializationServiceV1


class ClientObject:
    """An instance of a test type: its field values by name."""

    type_name = ""

    def __init__(self, **values: Any) -> None:
        self.values = values


class _Serializer(CompactSerializer):  # type: ignore[misc]
    def __init__(self, cls: type[ClientObject], fields: list[tuple[str, FieldKind]]) -> None:
        self._cls = cls
        self._fields = fields

    def read(self, reader: Any) -> ClientObject:
        return self._cls(
            **{
                name: getattr(reader, f"read_{kind.name.lower()}")(name)
                for name, kind in self._fields
            }
        )

    def write(self, writer: Any, obj: ClientObject) -> None:
        for name, kind in self._fields:
            getattr(writer, f"write_{kind.name.lower()}")(name, obj.values[name])

    def get_type_name(self) -> str:
        return self._cls.type_name

    def get_class(self) -> type[ClientObject]:
        return self._cls


class ClientWorld:
    """A set of test types and a client serialization service that knows them."""

    def __init__(self) -> None:
        self._serializers: dict[type[ClientObject], _Serializer] = {}
        self._service: Any = None

    def define(self, type_name: str, fields: list[tuple[str, FieldKind]]) -> type[ClientObject]:
        cls = type(type_name, (ClientObject,), {"type_name": type_name})
        self._serializers[cls] = _Serializer(cls, fields)
        self._service = None
        return cls

    @property
    def service(self) -> Any:
        if self._service is None:
            config = Config()
            config.compact_serializers = list(self._serializers.values())
            self._service = SerializationServiceV1(config)
        return self._service

    def schema_of(self, obj: ClientObject) -> Any:
        return CompactStreamSerializer._build_schema(self._serializers[type(obj)], obj)

    def _register(self, obj: object) -> list[Any]:
        schemas = []
        if isinstance(obj, ClientObject):
            schema = self.schema_of(obj)
            self.service._compact_stream_serializer.register_schema_to_type(schema, type(obj))
            schemas.append(schema)
            for value in obj.values.values():
                schemas += self._register(value)
        elif isinstance(obj, list):
            for item in obj:
                schemas += self._register(item)
        return schemas

    def to_bytes(self, obj: object) -> tuple[bytes, list[Any]]:
        """The Data bytes of ``obj`` and the schemas they use."""
        schemas = self._register(obj)
        return bytes(self.service.to_data(obj).buffer), schemas

    def to_object(self, data: bytes) -> Any:
        from hazelcast.serialization.data import Data

        return self.service.to_object(Data(data))
