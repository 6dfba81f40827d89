"""Java serialization (Serializable, Externalizable) read into a readable document.

A Java member serializes an object that has no Hazelcast serializer of its own with
its Java serializer (``JavaDefaultSerializers``): type id -100 for ``Serializable``
(one ``ObjectOutputStream.writeObject``), -101 for ``Externalizable`` (the class
name as Hazelcast's ``writeString``, then an ``ObjectOutputStream`` holding what
``writeExternal`` wrote). Either stream is gzip-compressed when the member's
serialization config enables compression. The stream is self-describing: its class
descriptors carry class names, serialVersionUIDs and field names and types, so it
reads into a document without the classes. The member's bytes stay the round-trip
authority; only simple classes are written back (:func:`write_simple_object`).

Stream grammar and constants: Java Object Serialization Specification, chapter 6
(https://docs.oracle.com/en/java/javase/17/docs/specs/serialization/protocol.html).

The document (JSON-ready: dict, list, str, int, float, bool, None):

=====================================  =============================================
Java                                   document
=====================================  =============================================
object                                 ``{"@class": name, field: value, ...}``: fields of
                                       the whole hierarchy, superclass fields first;
                                       a superclass field hidden by a subclass field
                                       of the same name is ``"<Simple>.<field>"``
                                       (the simple name without package or enclosing
                                       class; ``"<binary.Name>.<field>"`` if two
                                       superclasses share a simple name)
class with ``writeObject``             its fields as usual, then ``"@data": [...]``:
                                       what ``writeObject`` wrote after
                                       ``defaultWriteObject``, in order (block data as
                                       base64, objects as documents; adjacent blocks
                                       merged). When several classes of the hierarchy
                                       have ``writeObject``, each list is under
                                       ``"@data:<fully.qualified.Name>"`` instead
Externalizable                         ``{"@class": name, "@external": [...]}`` (same
                                       items as ``@data``)
Integer, Long, Short, Byte, Boolean,   the plain value (a float as
Character, Double, Float               :func:`~sidecar.codec.jsonmap.float_to_json`)
String, char                           str (one character for char)
enum                                   ``{"@enum": type, "name": constant}``
array                                  list; ``byte[]`` is ``{"@bytes": base64}``
``Class`` / ``ObjectStreamClass``      ``{"@classRef": name}`` / ``{"@classDesc": name}``
dynamic proxy                          ``{"@class": "$Proxy", "@interfaces": [...],
                                       "h": handler}``
null                                   None
back-reference to an earlier object    the same document again; ``{"@ref": class}``
                                       for an object still being read (a cycle), and
                                       once the copies would exceed
                                       ``EXPANSION_FACTOR`` times the payload (at
                                       least 1 MiB): objects shared without bound
                                       would make the JSON explode
=====================================  =============================================

A top-level value that is not an object or enum (an array, say) is wrapped as
``{"@class": name, "@value": value}``. Java strings are UTF-16: an unpaired
surrogate stays a lone surrogate code point in the Python str (lossless, but not
encodable as UTF-8; the caller decides what to do with such a document).

Reading is strict and bounded: every read is checked against the bytes left before
anything is allocated, nesting is limited to ``max_depth``, the payload must be
consumed exactly, and streams a member never writes (non-canonical NaN, a
TC_LONGSTRING under 64 KiB, a boolean other than 0/1, protocol-1 externalizable
data, ...) are refused. Every failure is a :class:`~sidecar.errors.DecodeError`
naming the offset (from the start of the ``Data``, or of the decompressed stream).
The stream does not say whether a ``writeObject`` called ``defaultWriteObject``; the
reader assumes it did, as the specification requires before any optional data
(section 2.3), so a class that skips it has its own data read as its fields (or
refused).
"""

from __future__ import annotations

import base64
import math
import re
import struct
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from hazelcast.hash import murmur_hash3_x86_32 as _client_murmur

from sidecar.codec.jsonmap import float_from_json, float_to_json
from sidecar.errors import DecodeError

#: Hazelcast's serializer type ids (``SerializationConstants.JAVA_DEFAULT_TYPE_*``).
TYPE_JAVA_SERIALIZABLE = -100
TYPE_JAVA_EXTERNALIZABLE = -101
_TYPE_STRING = -11

CLASS_KEY = "@class"
DATA_KEY = "@data"
EXTERNAL_KEY = "@external"
ENUM_KEY = "@enum"
BYTES_KEY = "@bytes"
CLASS_REF_KEY = "@classRef"
CLASS_DESC_KEY = "@classDesc"
REF_KEY = "@ref"
INTERFACES_KEY = "@interfaces"
VALUE_KEY = "@value"
PROXY_CLASS = "$Proxy"

PARTITIONED_SEQUENCE_KEY = "com.theyawns.framework.store.PartitionedSequenceKey"

DEFAULT_MAX_DEPTH = 64
#: Back-references are copied while the copies stay under this many times the payload.
EXPANSION_FACTOR = 16
_EXPANSION_FLOOR = 1 << 20
#: Largest decompressed stream accepted from a gzip-compressed payload.
DEFAULT_MAX_INFLATED = 64 << 20

_MAGIC = b"\xac\xed\x00\x05"
_GZIP_MAGIC = b"\x1f\x8b"
_BASE_HANDLE = 0x7E0000

TC_NULL = 0x70
TC_REFERENCE = 0x71
TC_CLASSDESC = 0x72
TC_OBJECT = 0x73
TC_STRING = 0x74
TC_ARRAY = 0x75
TC_CLASS = 0x76
TC_BLOCKDATA = 0x77
TC_ENDBLOCKDATA = 0x78
TC_RESET = 0x79
TC_BLOCKDATALONG = 0x7A
TC_EXCEPTION = 0x7B
TC_LONGSTRING = 0x7C
TC_PROXYCLASSDESC = 0x7D
TC_ENUM = 0x7E

SC_WRITE_METHOD = 0x01
SC_SERIALIZABLE = 0x02
SC_EXTERNALIZABLE = 0x04
SC_BLOCK_DATA = 0x08
SC_ENUM = 0x10

_TC_NAMES = {
    TC_NULL: "TC_NULL",
    TC_REFERENCE: "TC_REFERENCE",
    TC_CLASSDESC: "TC_CLASSDESC",
    TC_OBJECT: "TC_OBJECT",
    TC_STRING: "TC_STRING",
    TC_ARRAY: "TC_ARRAY",
    TC_CLASS: "TC_CLASS",
    TC_BLOCKDATA: "TC_BLOCKDATA",
    TC_ENDBLOCKDATA: "TC_ENDBLOCKDATA",
    TC_RESET: "TC_RESET",
    TC_BLOCKDATALONG: "TC_BLOCKDATALONG",
    TC_EXCEPTION: "TC_EXCEPTION",
    TC_LONGSTRING: "TC_LONGSTRING",
    TC_PROXYCLASSDESC: "TC_PROXYCLASSDESC",
    TC_ENUM: "TC_ENUM",
}

_HEADER = struct.Struct(">ii")
#: The client's MurmurHash3 x86_32 of a Data's payload (it skips the 8-byte header itself).
_murmur_hash3_x86_32: Callable[[bytes], int] = _client_murmur
_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")

#: Primitive type code -> its struct (``Z`` and ``C`` are converted after unpacking).
_PRIMITIVES: dict[str, struct.Struct] = {
    "B": struct.Struct(">b"),
    "C": _U16,
    "D": struct.Struct(">d"),
    "F": struct.Struct(">f"),
    "I": _I32,
    "J": _I64,
    "S": struct.Struct(">h"),
    "Z": struct.Struct(">B"),
}
_OBJECT_CODES = frozenset("L[")
_CANONICAL_NAN = {"F": bytes.fromhex("7fc00000"), "D": bytes.fromhex("7ff8000000000000")}
_INT_RANGES = {
    "B": (-(1 << 7), (1 << 7) - 1),
    "S": (-(1 << 15), (1 << 15) - 1),
    "I": (-(1 << 31), (1 << 31) - 1),
    "J": (-(1 << 63), (1 << 63) - 1),
}


@dataclass(frozen=True, slots=True)
class JavaField:
    """A serializable field as a class descriptor states it.

    ``type_code`` is the stream's: one of ``B C D F I J S Z`` (primitives) or ``L``
    (object) / ``[`` (array). ``class_name`` is the field's JVM type descriptor as the
    stream carries it (``"Ljava/lang/String;"``, ``"[I"``) for ``L`` and ``[``,
    None for primitives.
    """

    type_code: str
    name: str
    class_name: str | None = None


@dataclass(frozen=True, slots=True)
class JavaBoxed:
    """A boxed primitive to write in an object field: ``JavaBoxed("J", 5)`` is a Long.

    ``value`` as in a document: int, bool, a one-character str for ``C``, a float
    (or one of float_to_json's strings) for ``F`` / ``D``.
    """

    type_code: str
    value: object


# (class name, serialVersionUID, superclass is java.lang.Number), by primitive type code.
_BOXES: dict[str, tuple[str, int, bool]] = {
    "B": ("java.lang.Byte", -7183698231559129828, True),
    "C": ("java.lang.Character", 3786198910865385080, False),
    "D": ("java.lang.Double", -9172774392245257468, True),
    "F": ("java.lang.Float", -2671257302660747028, True),
    "I": ("java.lang.Integer", 1360826667806852920, True),
    "J": ("java.lang.Long", 4290774380558885855, True),
    "S": ("java.lang.Short", 7515723908773894738, True),
    "Z": ("java.lang.Boolean", -3665804199014368530, False),
}
_BOXED_CLASSES = {name: code for code, (name, _, _) in _BOXES.items()}
_NUMBER = ("java.lang.Number", -8742448824652078965)
#: Hazelcast's own serializer of each boxed type (a partition key's Data).
_HZ_BOX_TYPES: dict[str, int] = {
    "B": -3,
    "Z": -4,
    "C": -5,
    "S": -6,
    "I": -7,
    "J": -8,
    "F": -9,
    "D": -10,
}


# -- reading ----------------------------------------------------------------------


def read_java(
    data: bytes,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_inflated: int = DEFAULT_MAX_INFLATED,
) -> dict[str, object]:
    """The readable document of a whole ``Data`` (header included) of type id -100 or -101.

    ``max_depth`` bounds the nesting of objects and class descriptors,
    ``max_inflated`` the size of a gzip-compressed stream once decompressed.

    Raises:
        DecodeError: another type id, or bytes that are truncated, corrupt or not
            in the form a Java member writes (the message names the offset and
            what was expected there).
    """
    data = bytes(data)
    if len(data) < _HEADER.size:
        raise DecodeError(f"Data of {len(data)} bytes is shorter than its 8-byte header")
    type_id: int = _HEADER.unpack_from(data)[1]
    if type_id == TYPE_JAVA_SERIALIZABLE:
        reader = _stream(data, _HEADER.size, max_depth, max_inflated)
        root = reader.content(0)
        if reader.pos != reader.end:
            raise reader.fail(
                f"{reader.end - reader.pos} trailing bytes after the serialized object"
            )
        if isinstance(root, dict) and (CLASS_KEY in root or ENUM_KEY in root):
            return root
        # Only a class descriptor written as an object has no entry of its own.
        label = reader.root.label if reader.root is not None else "java.io.ObjectStreamClass"
        return {CLASS_KEY: label, VALUE_KEY: root}
    if type_id == TYPE_JAVA_EXTERNALIZABLE:
        name, pos = _hazelcast_string(data, _HEADER.size)
        reader = _stream(data, pos, max_depth, max_inflated)
        return {CLASS_KEY: name, EXTERNAL_KEY: reader.top_level_contents()}
    raise DecodeError(
        f"type id {type_id} is not Java serialization "
        f"({TYPE_JAVA_SERIALIZABLE} or {TYPE_JAVA_EXTERNALIZABLE})"
    )


def _hazelcast_string(data: bytes, pos: int) -> tuple[str, int]:
    """Hazelcast's ``writeString``: int32 UTF-8 byte length (-1: null), then the bytes."""
    if len(data) - pos < 4:
        raise DecodeError(f"Java serialization at offset {pos}: truncated class name length")
    length: int = _I32.unpack_from(data, pos)[0]
    start = pos + 4
    if length < 0 or length > len(data) - start:
        raise DecodeError(
            f"Java serialization at offset {pos}: class name length {length} does not fit "
            f"the {len(data) - start} bytes left"
        )
    try:
        name = data[start : start + length].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(
            f"Java serialization at offset {start + exc.start}: class name is not UTF-8"
        ) from None
    if not name:
        raise DecodeError(f"Java serialization at offset {pos}: empty class name")
    return name, start + length


def _stream(data: bytes, pos: int, max_depth: int, max_inflated: int) -> _Reader:
    """A reader positioned after the stream magic, over ``data[pos:]`` or its gunzipped form."""
    where = ""
    end = len(data)
    if data.startswith(_GZIP_MAGIC, pos):
        data = _gunzip(data, pos, max_inflated)
        pos, end, where = 0, len(data), " of the decompressed stream"
    if data[pos : pos + 4] != _MAGIC:
        raise DecodeError(
            f"Java serialization at offset {pos}{where}: expected the stream magic "
            f"aced0005, got {data[pos : pos + 4].hex() or 'the end of the data'}"
        )
    return _Reader(data, pos + 4, end, max_depth, where)


def _gunzip(data: bytes, pos: int, max_inflated: int) -> bytes:
    # Hazelcast's JavaDefaultSerializers write one gzip member when compression is on.
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data[pos:], max_inflated + 1)
    except zlib.error as exc:
        raise DecodeError(
            f"Java serialization at offset {pos}: corrupt gzip stream ({exc})"
        ) from None
    if len(out) > max_inflated:
        raise DecodeError(
            f"Java serialization at offset {pos}: gzip stream inflates past {max_inflated} bytes"
        )
    if not inflater.eof:
        raise DecodeError(f"Java serialization at offset {pos}: truncated gzip stream")
    if inflater.unused_data:
        raise DecodeError(
            f"Java serialization at offset {len(data) - len(inflater.unused_data)}: "
            f"{len(inflater.unused_data)} trailing bytes after the gzip stream"
        )
    return out


class _ClassDesc:
    """A class descriptor read from the stream (``name`` is ``$Proxy`` for a proxy class)."""

    __slots__ = ("done", "fields", "flags", "interfaces", "layout", "name", "suid", "super")

    def __init__(self, name: str, suid: int) -> None:
        self.name = name
        self.suid = suid
        self.flags = 0
        self.fields: tuple[JavaField, ...] = ()
        self.super: _ClassDesc | None = None
        self.interfaces: tuple[str, ...] | None = None
        self.done = False
        #: Per class from the root: (descriptor, document key per field, @data key or None).
        self.layout: tuple[tuple[_ClassDesc, tuple[str, ...], str | None], ...] | None = None


class _Entry:
    """What a handle stands for: a value read, or being read (``done`` False)."""

    __slots__ = ("done", "kind", "label", "start", "value", "weight")

    def __init__(self, kind: str, label: str, start: int) -> None:
        self.kind = kind
        self.label = label
        self.start = start
        self.value: object = None
        self.weight = 0
        self.done = False


class _Reader:
    """One stream: the buffer, the handle table and the depth and expansion bounds."""

    __slots__ = (
        "buf",
        "end",
        "expanded",
        "expansion_limit",
        "handles",
        "max_depth",
        "pos",
        "root",
        "where",
    )

    def __init__(self, buf: bytes, pos: int, end: int, max_depth: int, where: str) -> None:
        self.buf = buf
        self.pos = pos
        self.end = end
        self.max_depth = max_depth
        self.where = where
        self.handles: list[_Entry | _ClassDesc] = []
        self.root: _Entry | None = None
        self.expanded = 0
        self.expansion_limit = max(EXPANSION_FACTOR * (end - pos), _EXPANSION_FLOOR)

    # -- primitives ------------------------------------------------------------------

    def fail(self, message: str, at: int | None = None) -> DecodeError:
        offset = self.pos if at is None else at
        return DecodeError(f"Java serialization at offset {offset}{self.where}: {message}")

    def take(self, size: int, what: str) -> int:
        """Consume ``size`` bytes (checked against what is left); return where they start."""
        start = self.pos
        if size > self.end - start:
            raise self.fail(f"truncated {what}: needs {size} bytes, {self.end - start} left")
        self.pos = start + size
        return start

    def u8(self, what: str) -> int:
        return self.buf[self.take(1, what)]

    def u16(self, what: str) -> int:
        value: int = _U16.unpack_from(self.buf, self.take(2, what))[0]
        return value

    def i32(self, what: str) -> int:
        value: int = _I32.unpack_from(self.buf, self.take(4, what))[0]
        return value

    def i64(self, what: str) -> int:
        value: int = _I64.unpack_from(self.buf, self.take(8, what))[0]
        return value

    def utf(self, what: str) -> str:
        """``DataInput.readUTF``: uint16 length, modified UTF-8."""
        length = self.u16(f"{what} length")
        start = self.take(length, f"{what} of {length} bytes")
        return self.mutf8(start, length, what)

    def mutf8(self, start: int, length: int, what: str) -> str:
        raw = self.buf[start : start + length]
        try:
            return _decode_mutf8(raw)
        except _BadText as exc:
            raise self.fail(
                f"{what} is not modified UTF-8 ({exc.reason})", start + exc.at
            ) from None

    # -- handles ---------------------------------------------------------------------

    def new_entry(self, kind: str, label: str, depth: int) -> _Entry:
        entry = _Entry(kind, label, self.pos + self.expanded)
        self.handles.append(entry)
        if depth == 0 and self.root is None:
            self.root = entry
        return entry

    def finish(self, entry: _Entry, value: object) -> object:
        entry.value = value
        entry.weight = self.pos + self.expanded - entry.start
        entry.done = True
        return value

    def handle(self, at: int) -> _Entry | _ClassDesc:
        handle = self.i32("handle")
        index = handle - _BASE_HANDLE
        if not 0 <= index < len(self.handles):
            raise self.fail(
                f"reference to handle 0x{handle & 0xFFFFFFFF:x}, which was never assigned", at
            )
        return self.handles[index]

    def reference(self, at: int) -> object:
        target = self.handle(at)
        if isinstance(target, _ClassDesc):
            if not target.done:
                raise self.fail("reference to a class descriptor still being read", at)
            return {CLASS_DESC_KEY: target.name}
        if not target.done or self.expanded + target.weight > self.expansion_limit:
            return {REF_KEY: target.label}
        self.expanded += target.weight
        return target.value

    # -- contents --------------------------------------------------------------------

    def content(self, depth: int) -> object:
        """One ``content`` that is an object (no block data): a value of the document."""
        if depth > self.max_depth:
            raise self.fail(f"objects nested deeper than {self.max_depth} levels")
        at = self.pos
        tc = self.u8("type code")
        if tc == TC_OBJECT:
            return self.ordinary_object(depth, at)
        if tc == TC_STRING or tc == TC_LONGSTRING:
            return self.string(tc, depth)
        if tc == TC_NULL:
            if depth == 0:
                raise self.fail(
                    "the serialized object is null (a member writes null as type 0)", at
                )
            return None
        if tc == TC_REFERENCE:
            return self.reference(at)
        if tc == TC_ARRAY:
            return self.array(depth, at)
        if tc == TC_ENUM:
            return self.enum(depth, at)
        if tc == TC_CLASS:
            desc = self.class_desc(depth, at)
            if desc is None:
                raise self.fail("TC_CLASS without a class descriptor", at)
            entry = self.new_entry("class", "java.lang.Class", depth)
            return self.finish(entry, {CLASS_REF_KEY: desc.name})
        if tc == TC_CLASSDESC or tc == TC_PROXYCLASSDESC:
            return {CLASS_DESC_KEY: self.class_desc_body(tc, depth).name}
        raise self.fail(f"expected an object, got {_tc_name(tc)}", at)

    def string(self, tc: int, depth: int) -> str:
        if tc == TC_STRING:
            length = self.u16("string length")
        else:
            length = self.i64("long string length")
            if length <= 0xFFFF:
                raise self.fail(
                    f"TC_LONGSTRING of {length} bytes (a Java stream writes strings under "
                    "64 KiB as TC_STRING)",
                    self.pos - 8,
                )
        entry = self.new_entry("string", "java.lang.String", depth)
        start = self.take(length, f"string of {length} bytes")
        text = self.mutf8(start, length, "string")
        self.finish(entry, text)
        return text

    def string_content(self, what: str, depth: int) -> str:
        """A String object (new or a back-reference), where the grammar wants one."""
        at = self.pos
        tc = self.u8(what)
        if tc == TC_STRING or tc == TC_LONGSTRING:
            return self.string(tc, depth)
        if tc == TC_REFERENCE:
            target = self.handle(at)
            if isinstance(target, _Entry) and target.kind == "string":
                assert isinstance(target.value, str)
                return target.value
            raise self.fail(f"{what}: the reference is not to a string", at)
        raise self.fail(f"expected {what} as a string, got {_tc_name(tc)}", at)

    def class_desc(self, depth: int, owner: int) -> _ClassDesc | None:
        """A ``classDesc``: new, proxy, null or a back-reference to a finished one."""
        at = self.pos
        tc = self.u8("class descriptor")
        if tc == TC_CLASSDESC or tc == TC_PROXYCLASSDESC:
            return self.class_desc_body(tc, depth + 1)
        if tc == TC_NULL:
            return None
        if tc == TC_REFERENCE:
            target = self.handle(at)
            if not isinstance(target, _ClassDesc):
                raise self.fail("expected a class descriptor, the reference is to a value", at)
            if not target.done:
                raise self.fail(
                    f"class descriptor {target.name} refers to itself while being read", at
                )
            return target
        raise self.fail(
            f"expected a class descriptor for the content at offset {owner}, got {_tc_name(tc)}",
            at,
        )

    def class_desc_body(self, tc: int, depth: int) -> _ClassDesc:
        if depth > self.max_depth:
            raise self.fail(f"class descriptors nested deeper than {self.max_depth} levels")
        if tc == TC_PROXYCLASSDESC:
            desc = _ClassDesc(PROXY_CLASS, 0)
            self.handles.append(desc)
            at = self.pos
            count = self.i32("proxy interface count")
            if not 0 <= count <= (self.end - self.pos) // 2:
                raise self.fail(f"proxy interface count {count} does not fit the bytes left", at)
            desc.interfaces = tuple(self.utf("proxy interface name") for _ in range(count))
            desc.flags = SC_SERIALIZABLE
        else:
            at = self.pos
            name = self.utf("class name")
            if not name:
                raise self.fail("empty class name", at)
            desc = _ClassDesc(name, self.i64("serialVersionUID"))
            self.handles.append(desc)
            desc.flags = self.flags(desc)
            desc.fields = self.fields(desc, depth)
        self.annotation(depth)  # annotateClass: a plain ObjectOutputStream writes none
        desc.super = self.class_desc(depth, at)
        desc.done = True
        return desc

    def flags(self, desc: _ClassDesc) -> int:
        at = self.pos
        flags = self.u8(f"{desc.name} flags")
        serializable = flags & SC_SERIALIZABLE
        externalizable = flags & SC_EXTERNALIZABLE
        problem = None
        if flags & ~0x1F:
            problem = "unknown flag bits"
        elif serializable and externalizable:
            problem = "both SC_SERIALIZABLE and SC_EXTERNALIZABLE"
        elif flags & SC_WRITE_METHOD and not serializable:
            problem = "SC_WRITE_METHOD without SC_SERIALIZABLE"
        elif flags & SC_BLOCK_DATA and not externalizable:
            problem = "SC_BLOCK_DATA without SC_EXTERNALIZABLE"
        elif flags & SC_ENUM and (not serializable or desc.suid != 0):
            problem = "an enum descriptor must be serializable with serialVersionUID 0"
        if problem is not None:
            raise self.fail(f"class {desc.name}: flags 0x{flags:02x}: {problem}", at)
        return flags

    def fields(self, desc: _ClassDesc, depth: int) -> tuple[JavaField, ...]:
        at = self.pos
        count = self.u16(f"{desc.name} field count")
        if count and desc.flags & SC_ENUM:
            raise self.fail(f"enum descriptor {desc.name} declares {count} fields", at)
        fields: list[JavaField] = []
        names: set[str] = set()
        for _ in range(count):
            at = self.pos
            code = chr(self.u8("field type code"))
            if code not in _PRIMITIVES and code not in _OBJECT_CODES:
                raise self.fail(f"class {desc.name}: unknown field type code {code!r}", at)
            name = self.utf("field name")
            if not name or name.startswith("@") or "." in name or name in names:
                raise self.fail(f"class {desc.name}: invalid or repeated field name {name!r}", at)
            names.add(name)
            signature = None
            if code in _OBJECT_CODES:
                signature = self.string_content(f"type of field {name}", depth)
                if not _valid_signature(code, signature):
                    raise self.fail(
                        f"class {desc.name}: field {name} of type code {code!r} has the "
                        f"type descriptor {signature!r}",
                        at,
                    )
            fields.append(JavaField(code, name, signature))
        return tuple(fields)

    def annotation(self, depth: int) -> list[object]:
        """Contents up to TC_ENDBLOCKDATA (``classAnnotation``, ``objectAnnotation``)."""
        items: list[object] = []
        block = bytearray()
        while True:
            at = self.pos
            tc = self.u8("annotation content or TC_ENDBLOCKDATA")
            if tc == TC_ENDBLOCKDATA:
                break
            if tc == TC_BLOCKDATA or tc == TC_BLOCKDATALONG:
                block += self.block_data(tc)
                continue
            if block:
                items.append(_b64(block))
                block = bytearray()
            self.pos = at
            items.append(self.content(depth + 1))
        if block:
            items.append(_b64(block))
        return items

    def top_level_contents(self) -> list[object]:
        """What ``writeExternal`` wrote directly to the stream, up to the end of the data."""
        items: list[object] = []
        block = bytearray()
        while self.pos < self.end:
            at = self.pos
            tc = self.u8("content")
            if tc == TC_BLOCKDATA or tc == TC_BLOCKDATALONG:
                block += self.block_data(tc)
                continue
            if tc == TC_RESET:
                # ObjectOutputStream.reset() between objects: the handle table starts over.
                self.handles.clear()
                continue
            if block:
                items.append(_b64(block))
                block = bytearray()
            self.pos = at
            items.append(self.content(1))
        if block:
            items.append(_b64(block))
        return items

    def block_data(self, tc: int) -> bytes:
        at = self.pos
        size = self.u8("block data size") if tc == TC_BLOCKDATA else self.i32("block data size")
        if size < 0:
            raise self.fail(f"negative block data size {size}", at)
        start = self.take(size, f"block data of {size} bytes")
        return self.buf[start : start + size]

    def ordinary_object(self, depth: int, at: int) -> object:
        desc = self.class_desc(depth, at)
        if desc is None:
            raise self.fail("TC_OBJECT without a class descriptor", at)
        if desc.flags & SC_ENUM:
            raise self.fail(f"TC_OBJECT of the enum class {desc.name}", at)
        entry = self.new_entry("object", desc.name, depth)
        if desc.flags & SC_EXTERNALIZABLE:
            if not desc.flags & SC_BLOCK_DATA:
                raise self.fail(
                    f"externalizable {desc.name} written with stream protocol 1 "
                    "(unreadable without the class; members write protocol 2)",
                    at,
                )
            return self.finish(entry, {CLASS_KEY: desc.name, EXTERNAL_KEY: self.annotation(depth)})
        document: dict[str, object] = {CLASS_KEY: desc.name}
        if desc.interfaces is not None:
            document[INTERFACES_KEY] = list(desc.interfaces)
        for level, keys, data_key in self.layout(desc, at):
            for field, key in zip(level.fields, keys, strict=True):
                document[key] = self.field_value(field, depth)
            if data_key is not None:
                document[data_key] = self.annotation(depth)
        box = _BOXED_CLASSES.get(desc.name)
        if box is not None and desc.fields == (JavaField(box, "value"),) and len(document) == 2:
            return self.finish(entry, document["value"])
        return self.finish(entry, document)

    def layout(
        self, desc: _ClassDesc, at: int
    ) -> tuple[tuple[_ClassDesc, tuple[str, ...], str | None], ...]:
        if desc.layout is not None:
            return desc.layout
        chain: list[_ClassDesc] = []
        level: _ClassDesc | None = desc
        while level is not None:
            if len(chain) == self.max_depth:
                raise self.fail(
                    f"class {desc.name} has more than {self.max_depth} superclasses", at
                )
            if not level.flags & SC_SERIALIZABLE or level.flags & SC_ENUM:
                raise self.fail(
                    f"class descriptor {level.name} (in the hierarchy of {desc.name}) is not "
                    "of a serializable class",
                    at,
                )
            chain.append(level)
            level = level.super
        if len({level.name for level in chain}) != len(chain):
            raise self.fail(f"class {desc.name} appears twice in its own hierarchy", at)
        writers = sum(1 for level in chain if level.flags & SC_WRITE_METHOD)
        taken: set[str] = set()
        plan: list[tuple[_ClassDesc, tuple[str, ...], str | None]] = []
        for level in chain:  # the class itself first: its fields keep their plain names
            simple = _simple_name(level.name)
            keys = []
            for field in level.fields:
                key = field.name
                if key in taken:
                    key = f"{simple}.{field.name}"
                    if key in taken:
                        key = f"{level.name}.{field.name}"
                taken.add(key)
                keys.append(key)
            data_key = None
            if level.flags & SC_WRITE_METHOD:
                data_key = DATA_KEY if writers == 1 else f"{DATA_KEY}:{level.name}"
            plan.append((level, tuple(keys), data_key))
        desc.layout = tuple(reversed(plan))
        return desc.layout

    def field_value(self, field: JavaField, depth: int) -> object:
        code = field.type_code
        st = _PRIMITIVES.get(code)
        if st is None:
            if code == "[" and self.pos < self.end:
                tc = self.buf[self.pos]
                if tc not in (TC_ARRAY, TC_NULL, TC_REFERENCE):
                    raise self.fail(f"array field {field.name} holds {_tc_name(tc)}, not an array")
            return self.content(depth + 1)
        start = self.take(st.size, f"{field.name} ({code})")
        return self.primitive(code, st.unpack_from(self.buf, start)[0], start)

    def primitive(self, code: str, value: int | float, at: int) -> object:
        if code == "Z":
            if value > 1:
                raise self.fail(f"boolean byte 0x{value:02x} (a Java stream writes 0 or 1)", at)
            return value == 1
        if code == "C":
            return chr(int(value))
        if code == "F" or code == "D":
            assert isinstance(value, float)
            if (
                math.isnan(value)
                and self.buf[at : at + len(_CANONICAL_NAN[code])] != (_CANONICAL_NAN[code])
            ):
                raise self.fail("NaN with a payload (Java writes the canonical NaN)", at)
            return float_to_json(value, single=code == "F")
        return value

    def array(self, depth: int, at: int) -> object:
        desc = self.class_desc(depth, at)
        name = desc.name if desc is not None else ""
        code = name[1:2]
        if not name.startswith("[") or not (
            (code in _PRIMITIVES and len(name) == 2)
            or (code == "L" and len(name) > 3 and name.endswith(";"))
            or (code == "[" and len(name) > 2)
        ):
            raise self.fail(f"TC_ARRAY of the class {name or 'null'!r}, not an array class", at)
        entry = self.new_entry("array", name, depth)
        count_at = self.pos
        count = self.i32("array length")
        if count < 0:
            raise self.fail(f"negative array length {count}", count_at)
        st = _PRIMITIVES.get(code)
        if st is None:
            if count > self.end - self.pos:  # every element takes at least one byte
                raise self.fail(
                    f"array of {count} elements cannot fit in the {self.end - self.pos} bytes left",
                    count_at,
                )
            items = [self.content(depth + 1) for _ in range(count)]
            return self.finish(entry, items)
        if count > (self.end - self.pos) // st.size:
            raise self.fail(
                f"array of {count} {name[1:]} cannot fit in the {self.end - self.pos} bytes left",
                count_at,
            )
        start = self.take(count * st.size, f"array of {count} elements")
        buf = self.buf
        if code == "B":
            return self.finish(entry, {BYTES_KEY: _b64(buf[start : start + count])})
        values = struct.unpack_from(f">{count}{st.format[-1]}", buf, start)
        if code in "ZCFD":
            return self.finish(
                entry,
                [
                    self.primitive(code, value, start + i * st.size)
                    for i, value in enumerate(values)
                ],
            )
        return self.finish(entry, list(values))

    def enum(self, depth: int, at: int) -> object:
        desc = self.class_desc(depth, at)
        if desc is None or not desc.flags & SC_ENUM:
            raise self.fail(
                f"TC_ENUM of {desc.name if desc else 'no class'}, not an enum class", at
            )
        entry = self.new_entry("enum", desc.name, depth)
        constant = self.string_content("enum constant name", depth + 1)
        return self.finish(entry, {ENUM_KEY: desc.name, "name": constant})


def _simple_name(name: str) -> str:
    """``Class.getSimpleName`` of a binary name: no package, no enclosing class."""
    tail = name.rsplit(".", 1)[-1]
    inner = tail.rsplit("$", 1)[-1]
    return inner if inner and not inner[0].isdigit() else tail


def _tc_name(tc: int) -> str:
    name = _TC_NAMES.get(tc)
    return f"{name} (0x{tc:02x})" if name else f"byte 0x{tc:02x}"


def _valid_signature(code: str, signature: str) -> bool:
    if not signature.startswith(code):
        return False
    if code == "L":
        return len(signature) > 2 and signature.endswith(";")
    return len(signature) > 1


def _b64(raw: bytes | bytearray) -> str:
    return base64.b64encode(raw).decode("ascii")


# -- modified UTF-8 ------------------------------------------------------------------


class _BadText(Exception):
    def __init__(self, reason: str, at: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.at = at


#: Bytes a Java writer never puts in modified UTF-8: raw NUL (it writes C0 80) and
#: the lead bytes of 4-byte sequences (it writes a surrogate pair as two 3-byte ones).
_NOT_MUTF8 = re.compile(rb"[\x00\xf0-\xff]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _decode_mutf8(raw: bytes) -> str:
    """Modified UTF-8 (``DataInput.readUTF``), refusing what a Java writer never emits."""
    bad = _NOT_MUTF8.search(raw)
    if bad is not None:
        raise _BadText(f"byte 0x{raw[bad.start()]:02x}", bad.start())
    if raw.isascii():
        return raw.decode("ascii")
    # C0 80 is NUL; C0 is never a continuation byte, so the replacement cannot
    # split a sequence, and an invalid sequence stays invalid for the decoder.
    try:
        text = raw.replace(b"\xc0\x80", b"\x00").decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise _BadText(exc.reason, exc.start) from None
    if b"\xed" in raw:  # surrogates: pairs join into one character, lone ones stay
        text = text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "surrogatepass")
    return text


def _encode_mutf8(text: str) -> bytes:
    """``DataOutput.writeUTF``'s bytes (without the length)."""
    if text.isascii() and "\x00" not in text:
        return text.encode("ascii")
    units = _ASTRAL.sub(_surrogate_pair, text)
    return units.encode("utf-8", "surrogatepass").replace(b"\x00", b"\xc0\x80")


def _surrogate_pair(match: re.Match[str]) -> str:
    code = ord(match.group()) - 0x10000
    return chr(0xD800 + (code >> 10)) + chr(0xDC00 + (code & 0x3FF))


# -- partition hash ----------------------------------------------------------------------


def partition_hash(partition_key_data: bytes) -> int:
    """The partition hash a member writes in the ``Data`` of a ``PartitionAware`` key.

    ``Data.getPartitionHash()`` of the partition key's own ``Data``: its header's hash
    when non-zero, else MurmurHash3 x86_32 of its payload (from offset 8, seed
    0x01000193, Hazelcast's ``HashUtil``), which the Python client implements.
    """
    partition_key_data = bytes(partition_key_data)
    if len(partition_key_data) < _HEADER.size:
        raise DecodeError(
            f"partition key Data of {len(partition_key_data)} bytes is shorter than its header"
        )
    own: int = _HEADER.unpack_from(partition_key_data)[0]
    if own != 0:
        return own
    return _murmur_hash3_x86_32(partition_key_data)


def _java_utf8(text: str) -> bytes:
    """``String.getBytes(UTF_8)``: surrogate pairs join, an unpaired one becomes '?'."""
    joined = text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "surrogatepass")
    return joined.encode("utf-8", "replace")


def _partition_key_data(key: str | JavaBoxed) -> bytes:
    """The ``Data`` a member makes of a partition key (Hazelcast's own serializers)."""
    if isinstance(key, str):
        encoded = _java_utf8(key)
        return _HEADER.pack(0, _TYPE_STRING) + _I32.pack(len(encoded)) + encoded
    if key.type_code not in _HZ_BOX_TYPES:
        raise DecodeError(f"partition key: unknown boxed type code {key.type_code!r}")
    return _HEADER.pack(0, _HZ_BOX_TYPES[key.type_code]) + _primitive_bytes(
        key.type_code, key.value, "partition key"
    )


# -- writing ----------------------------------------------------------------------------


def write_simple_object(
    class_name: str,
    serial_version_uid: int,
    fields: Sequence[JavaField],
    values: Mapping[str, object],
    *,
    partition_key: str | JavaBoxed | None,
) -> bytes:
    """The exact ``Data`` (type id -100) a member writes for an object of a simple class.

    A simple class: no ``writeObject``, no serializable superclass, fields of
    primitive types, object fields (``L``) holding a str (String), None or a
    :class:`JavaBoxed`, and array fields (``[``) holding None. ``fields`` in any
    order (the descriptor's order is Java's: primitives, then objects, each by
    name). Values: int for B/S/I/J, bool for Z, a one-character str for C, a float
    (or float_to_json's strings) for F/D.

    The partition hash is that of ``partition_key`` (the member's partition key's
    ``Data``: a String, or a boxed primitive) when given, else 0.

    Each String value is written as a new object. A Java stream writes a back-reference
    instead when the same String instance was written before in the stream (two fields
    holding one instance, or a value that is the interned type descriptor of a field):
    which instance a field held is not in the values, so such streams are not reproduced.

    Raises:
        DecodeError: a value does not fit its field, or a field definition is invalid.
    """
    ordered = _descriptor_order(class_name, fields)
    names = {field.name for field in ordered}
    if set(values) != names:
        raise DecodeError(
            f"{class_name}: values do not match the fields (missing "
            f"{sorted(names - set(values))}, unknown {sorted(set(values) - names)})"
        )
    writer = _Writer()
    out = writer.out
    out += bytes((TC_OBJECT,))
    writer.class_desc(class_name, serial_version_uid, ordered, None)
    writer.handles += 1  # the object
    for field in ordered:
        value = values[field.name]
        if field.type_code in _PRIMITIVES:
            out += _primitive_bytes(field.type_code, value, f"{class_name}.{field.name}")
        else:
            writer.object_value(field, value, class_name)
    hash_ = 0 if partition_key is None else partition_hash(_partition_key_data(partition_key))
    return _HEADER.pack(hash_, TYPE_JAVA_SERIALIZABLE) + bytes(out)


def partitioned_sequence_key_data(sequence: int, partition_key: str) -> bytes:
    """The exact member ``Data`` of the reference framework's ``PartitionedSequenceKey<String>``.

    ``serialVersionUID`` 1, fields ``long sequence`` and ``K partitionKey`` (erased to
    ``java.lang.Object``); ``PartitionAware``, so the header carries the partition
    key's hash.
    """
    return write_simple_object(
        PARTITIONED_SEQUENCE_KEY,
        1,
        _PSK_FIELDS,
        {"sequence": sequence, "partitionKey": partition_key},
        partition_key=partition_key,
    )


_PSK_FIELDS = (JavaField("J", "sequence"), JavaField("L", "partitionKey", "Ljava/lang/Object;"))


def _descriptor_order(class_name: str, fields: Sequence[JavaField]) -> list[JavaField]:
    """``ObjectStreamClass``'s field order: primitives first, then objects, each by name.

    Names compare as Java Strings do, by UTF-16 code units.
    """
    seen: set[str] = set()
    for field in fields:
        if not isinstance(field, JavaField):
            raise DecodeError(f"{class_name}: expected JavaField, got {type(field).__name__}")
        code = field.type_code
        primitive = code in _PRIMITIVES
        if not primitive and code not in _OBJECT_CODES:
            raise DecodeError(f"{class_name}.{field.name}: unknown type code {code!r}")
        if primitive != (field.class_name is None) or (
            field.class_name is not None and not _valid_signature(code, field.class_name)
        ):
            raise DecodeError(
                f"{class_name}.{field.name}: type code {code!r} with class name "
                f"{field.class_name!r} (a type descriptor such as 'Ljava/lang/Object;' for "
                "L and [ fields, None for primitives)"
            )
        if not field.name or field.name in seen:
            raise DecodeError(f"{class_name}: empty or repeated field name {field.name!r}")
        seen.add(field.name)
    return sorted(
        fields,
        key=lambda f: (
            f.type_code not in _PRIMITIVES,
            f.name.encode("utf-16-be", "surrogatepass"),
        ),
    )


def _primitive_bytes(code: str, value: object, what: str) -> bytes:
    st = _PRIMITIVES[code]
    if code == "Z":
        if not isinstance(value, bool):
            raise DecodeError(f"{what}: expected a boolean, got {value!r}")
        return st.pack(1 if value else 0)
    if code == "C":
        if not isinstance(value, str) or len(value) != 1 or ord(value) > 0xFFFF:
            raise DecodeError(f"{what}: expected one UTF-16 character, got {value!r}")
        return st.pack(ord(value))
    if code == "F" or code == "D":
        try:
            if isinstance(value, float) and not math.isfinite(value):
                number = value  # a Python float; a document spells these as strings
            else:
                number = float_from_json(value, single=code == "F")
        except DecodeError as exc:
            raise DecodeError(f"{what}: {exc}") from None
        return _CANONICAL_NAN[code] if math.isnan(number) else st.pack(number)
    low, high = _INT_RANGES[code]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DecodeError(f"{what}: expected an integer in {low}..{high}, got {value!r}")
    return st.pack(value)


#: Declared field types that a String value may be written in.
_STRING_HOLDERS = frozenset(
    {
        "Ljava/lang/String;",
        "Ljava/lang/Object;",
        "Ljava/io/Serializable;",
        "Ljava/lang/Comparable;",
        "Ljava/lang/CharSequence;",
    }
)
_BOX_HOLDERS = frozenset({"Ljava/lang/Object;", "Ljava/io/Serializable;", "Ljava/lang/Comparable;"})


class _Writer:
    """An ``ObjectOutputStream`` of one simple object: the bytes and the handle table."""

    __slots__ = ("descs", "handles", "out", "type_strings")

    def __init__(self) -> None:
        self.out = bytearray(_MAGIC)
        self.handles = 0
        self.descs: dict[str, int] = {}
        #: Field type descriptors are interned Strings: each is written once, then referenced.
        self.type_strings: dict[str, int] = {}

    def new_handle(self) -> int:
        handle = _BASE_HANDLE + self.handles
        self.handles += 1
        return handle

    def utf(self, text: str, what: str) -> None:
        encoded = _encode_mutf8(text)
        if len(encoded) > 0xFFFF:
            raise DecodeError(f"{what} of {len(encoded)} bytes is too long for writeUTF")
        self.out += _U16.pack(len(encoded)) + encoded

    def string(self, text: str) -> None:
        encoded = _encode_mutf8(text)
        self.new_handle()
        if len(encoded) <= 0xFFFF:
            self.out += bytes((TC_STRING,)) + _U16.pack(len(encoded))
        else:
            self.out += bytes((TC_LONGSTRING,)) + _I64.pack(len(encoded))
        self.out += encoded

    def class_desc(
        self,
        name: str,
        suid: int,
        fields: Sequence[JavaField],
        superclass: tuple[str, int] | None,
    ) -> None:
        """A class descriptor (a back-reference if already written); ``fields`` in order."""
        out = self.out
        handle = self.descs.get(name)
        if handle is not None:
            out += bytes((TC_REFERENCE,)) + _I32.pack(handle)
            return
        if not -(1 << 63) <= suid < 1 << 63:
            raise DecodeError(f"{name}: serialVersionUID {suid} is out of the long range")
        if not name:
            raise DecodeError("empty class name")
        out += bytes((TC_CLASSDESC,))
        self.utf(name, "class name")
        out += _I64.pack(suid)
        self.descs[name] = self.new_handle()
        out += bytes((SC_SERIALIZABLE,)) + _U16.pack(len(fields))
        for field in fields:
            out += field.type_code.encode("ascii")
            self.utf(field.name, "field name")
            if field.class_name is not None:
                known = self.type_strings.get(field.class_name)
                if known is None:
                    self.type_strings[field.class_name] = _BASE_HANDLE + self.handles
                    self.string(field.class_name)
                else:
                    out += bytes((TC_REFERENCE,)) + _I32.pack(known)
        out += bytes((TC_ENDBLOCKDATA,))
        if superclass is None:
            out += bytes((TC_NULL,))
        else:
            self.class_desc(*superclass, (), None)

    def object_value(self, field: JavaField, value: object, owner: str) -> None:
        what = f"{owner}.{field.name}"
        declared = field.class_name
        if value is None:
            self.out += bytes((TC_NULL,))
        elif field.type_code == "[":
            raise DecodeError(f"{what}: arrays are not written, only null")
        elif isinstance(value, str):
            if declared not in _STRING_HOLDERS:
                raise DecodeError(f"{what}: a String does not fit the declared type {declared}")
            self.string(value)
        elif isinstance(value, JavaBoxed):
            box = _BOXES.get(value.type_code)
            if box is None:
                raise DecodeError(f"{what}: unknown boxed type code {value.type_code!r}")
            box_name, box_suid, is_number = box
            holders = _BOX_HOLDERS | {f"L{box_name.replace('.', '/')};"}
            if is_number:
                holders |= {"Ljava/lang/Number;"}
            if declared not in holders:
                raise DecodeError(f"{what}: a {box_name} does not fit the declared type {declared}")
            payload = _primitive_bytes(value.type_code, value.value, what)
            self.out += bytes((TC_OBJECT,))
            self.class_desc(
                box_name,
                box_suid,
                (JavaField(value.type_code, "value"),),
                _NUMBER if is_number else None,
            )
            self.new_handle()
            self.out += payload
        else:
            raise DecodeError(
                f"{what}: expected a str, None or JavaBoxed, got {type(value).__name__}"
            )
