"""The compiled accelerator (Cython, ``sidecar.codec._flat``) against the pure-Python codec.

The generated Python decoder of :mod:`sidecar.codec.compiled` is the authority: on
every input the accelerator returns the same document and plain fields, or raises
the same exception (``Fallback``, ``WriteOrderNeeded`` with the same order), and
the generic codec's answers through :meth:`DataCodec.decode_for_store` are the same
whichever runs. Input: random flat schemas and records of every flat field kind,
every write order a schema can claim, mutated bytes, and the awkward values
(float specials, float32, decimals past 64 bits and negative scales, dates outside
1..9999, impossible dates).

Where the extension is not built these tests skip, and fail under
``--strict-prerequisites`` / CI, which build it (``.ci/run``). The install's
fallback itself (no compiler: the install goes on and says so) is tested by
building with a compiler that fails.
"""

from __future__ import annotations

import decimal
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hazelcast.serialization.api import FieldKind
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.codec import CompactRecord, DataCodec, SchemaRegistry, accel, encode_compact
from sidecar.codec import compiled as compiled_codecs
from sidecar.codec.compiled import Fallback
from sidecar.codec.jsonmap import loads
from sidecar.codec.plan import SchemaPlan, plan_of
from sidecar.codec.schemas import build_schema, to_record
from sidecar.codec.temporal import LocalDate
from sidecar.errors import ConfigError, DecodeError, WriteOrderNeeded
from tests.prerequisites import missing

from .strategies import LEAF_KINDS, mutate, records, schemas

ROOT = Path(__file__).resolve().parents[3]
FLAT_KINDS = [k for k in LEAF_KINDS if not k.name.startswith("ARRAY_OF_")]
FRAME = struct.pack(">ii", 0, -55)
SETTINGS = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(autouse=True)
def _built() -> None:
    if not accel.available():
        missing(
            "the compiled codec accelerator (sidecar.codec._flat) is not built",
            "install gcc and the Python headers (Debian: apt-get install gcc python3-dev), "
            "then `make install`",
        )


def _decoders(schema: Any) -> tuple[Any, Any]:
    plan = plan_of(schema)
    return compiled_codecs.python_decoder(plan), compiled_codecs._accelerated_decoder(plan)


def _outcome(decoder: Any, data: bytes, rank: Any, pending: bool) -> tuple[str, Any]:
    """What a decoder does with ``data``: its result, or the exception it raises."""
    try:
        return "ok", decoder(data, rank, pending)
    except Fallback:
        return "fallback", None
    except WriteOrderNeeded as exc:
        return "order-needed", (exc.schema_id, exc.order)


def _orders(draw: Any, schema: Any) -> list[tuple[tuple[int, ...], bool]]:
    """(rank, pending) pairs: the schema's own order, pending, and a claimed permutation."""
    plan = plan_of(schema)
    names = list(plan.var_names)
    claimed = tuple(draw.draw(st.permutations(names))) if names else ()
    out = [(plan.schema_order, False), (plan.schema_order, True)]
    if claimed:
        rank, _, pending = plan.order_numbers(claimed)
        out.append((rank, pending))
    return out


@st.composite
def flat_records(draw: st.DrawFn) -> CompactRecord:
    schema = draw(schemas(FLAT_KINDS, "Flat"))
    record: CompactRecord = draw(records(schema))
    return record


def _assert_same(schema: Any, data: bytes, draw: Any) -> str:
    python, accelerated = _decoders(schema)
    kinds = set()
    for rank, pending in _orders(draw, schema):
        expected = _outcome(python, data, rank, pending)
        assert _outcome(accelerated, data, rank, pending) == expected, (rank, pending)
        kinds.add(expected[0])
    return "ok" if "ok" in kinds else sorted(kinds)[0]


@SETTINGS
@given(flat_records(), st.data())
def test_accelerator_equals_the_python_decoder_on_generated_records(
    record: CompactRecord, draw: Any
) -> None:
    data = FRAME + encode_compact(record)[0]
    _assert_same(record.schema, data, draw)


@SETTINGS
@given(flat_records(), st.data())
def test_accelerator_equals_the_python_decoder_on_mutated_bytes(
    record: CompactRecord, draw: Any
) -> None:
    data = mutate(draw, FRAME + encode_compact(record)[0], 16, [-1, 0, 1, 29, 254, 255, 65535])
    _assert_same(record.schema, data, draw)


@SETTINGS
@given(flat_records(), st.data())
def test_decode_for_store_gives_the_same_answer_with_either_decoder(
    record: CompactRecord, draw: Any
) -> None:
    """What the service sees (stored value, plain fields, errors) does not depend on the codec."""
    data = mutate(draw, FRAME + encode_compact(record)[0], 16, [0, 1, 255])
    answers = []
    for make in (compiled_codecs.python_decoder, compiled_codecs._accelerated_decoder):
        registry = SchemaRegistry()
        registry.add(to_record(record.schema))
        plan = plan_of(registry.get(record.schema.schema_id))
        plan.decoder, plan.compiled = make(plan), True
        plan.encoder = compiled_codecs._compile_encoder(plan)
        try:
            decoded = DataCodec(registry).decode_for_store(data)
            answers.append(("ok", decoded.stored, decoded.fields, decoded.schema_ids))
        except Exception as exc:
            answers.append(("error", type(exc), str(exc)))
        finally:
            plan.compiled = False
    # repr: a NaN field (the generic path's record) equals itself only as text.
    assert repr(answers[0]) == repr(answers[1])


# -- values the random records rarely reach ------------------------------------------------

_SPECIAL_FIELDS = [
    ("f64", FieldKind.FLOAT64),
    ("f32", FieldKind.FLOAT32),
    ("nf64", FieldKind.NULLABLE_FLOAT64),
    ("nf32", FieldKind.NULLABLE_FLOAT32),
    ("dec", FieldKind.DECIMAL),
    ("day", FieldKind.DATE),
    ("t", FieldKind.TIME),
    ("ts", FieldKind.TIMESTAMP),
    ("tz", FieldKind.TIMESTAMP_WITH_TIMEZONE),
    ("i8", FieldKind.NULLABLE_INT8),
    ("i16", FieldKind.NULLABLE_INT16),
    ("i32", FieldKind.NULLABLE_INT32),
    ("i64", FieldKind.NULLABLE_INT64),
    ("flag", FieldKind.NULLABLE_BOOLEAN),
]
_FLOATS = [0.0, -0.0, float("inf"), float("-inf"), float("nan"), 5e-324, 1.7976931348623157e308,
           0.1, -2.5, 1e16, 3.4028234663852886e38, 1e-45]  # fmt: skip
#: float32 bit patterns: zeros, infinities, NaNs (canonical and not), the extremes, 0.1.
_FLOAT32_BITS = [0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0x00000001,
                 0x7F7FFFFF, 0x3DCCCCCD]  # fmt: skip


def _patch(data: bytes, at: int, raw: bytes) -> bytes:
    return data[:at] + raw + data[at + len(raw) :]


def _special_record(draw: Any) -> bytes:
    """A record of ``_SPECIAL_FIELDS`` with its fixed and variable bytes overwritten."""
    schema = build_schema("Special", [(name, kind.value) for name, kind in _SPECIAL_FIELDS])
    record = draw.draw(records(schema))
    data = FRAME + encode_compact(record)[0]
    by_name = {f.name: f for f in schema.fields}
    ds = 20  # frame, schema id, data length
    f64 = by_name["f64"]
    data = _patch(data, ds + f64.position, struct.pack(">d", draw.draw(st.sampled_from(_FLOATS))))
    if draw.draw(st.booleans()):  # another NaN's bits: the generic path checks them
        data = _patch(data, ds + f64.position, struct.pack(">Q", 0x7FF0000000000001))
    f32 = by_name["f32"]
    bits = draw.draw(st.sampled_from(_FLOAT32_BITS) | st.integers(0, 2**32 - 1))
    return _patch(data, ds + f32.position, struct.pack(">I", bits))


@SETTINGS
@given(st.data())
def test_accelerator_equals_the_python_decoder_on_float_specials(draw: Any) -> None:
    schema = build_schema("Special", [(name, kind.value) for name, kind in _SPECIAL_FIELDS])
    _assert_same(schema, _special_record(draw), draw)


def _decimal_payload(unscaled: int, scale: int, pad: bool) -> bytes:
    raw = unscaled.to_bytes((8 + (unscaled + (unscaled < 0)).bit_length()) // 8, "big", signed=True)
    if pad:  # not minimal: the generic path refuses it, and so must the accelerator
        raw = (b"\xff" if unscaled < 0 else b"\x00") + raw
    return struct.pack(">i", len(raw)) + raw + struct.pack(">i", scale)


@SETTINGS
@given(
    st.integers(-(2**80), 2**80)
    | st.sampled_from([0, -1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1]),
    st.integers(-5, 105) | st.sampled_from([-(2**31), 2**31 - 1]),
    st.booleans(),
)
def test_accelerator_writes_decimals_as_the_python_decoder_does(
    unscaled: int, scale: int, pad: bool
) -> None:
    schema = build_schema("Dec", [("amount", FieldKind.DECIMAL.value)])
    payload = _decimal_payload(unscaled, scale, pad)
    data = FRAME + struct.pack(">i", len(payload)) + payload + bytes([0])
    data = FRAME[:8] + struct.pack(">q", schema.schema_id) + data[8:]
    python, accelerated = _decoders(schema)
    assert _outcome(accelerated, data, plan_of(schema).schema_order, False) == _outcome(
        python, data, plan_of(schema).schema_order, False
    )


@SETTINGS
@given(
    st.integers(-(2**31), 2**31 - 1) | st.integers(-3, 10002) | st.sampled_from([1900, 2024]),
    st.integers(-128, 127) | st.integers(0, 13),
    st.integers(-128, 127) | st.integers(0, 32),
)
def test_accelerator_writes_dates_as_the_python_decoder_does(
    year: int, month: int, day: int
) -> None:
    schema = build_schema("Day", [("day", FieldKind.DATE.value)])
    payload = struct.pack(">ibb", year, month, day)
    body = struct.pack(">i", len(payload)) + payload + bytes([0])
    data = FRAME + struct.pack(">q", schema.schema_id) + body
    python, accelerated = _decoders(schema)
    assert _outcome(accelerated, data, plan_of(schema).schema_order, False) == _outcome(
        python, data, plan_of(schema).schema_order, False
    )


@pytest.mark.parametrize(
    "text",
    ["".join(map(chr, range(128))), 'q"uo\\te', "é\u2028\u2029\U0001f600\x7f", "", "\x00"],
)
def test_strings_escape_as_json_does(text: str) -> None:
    """Every ASCII character (controls in \\u00XX, lowercase), quotes, backslashes, and
    non-ASCII left as they are: the accelerator's document is json's, byte for byte."""
    schema = build_schema("Texts", [("s", FieldKind.STRING.value), ("t", FieldKind.STRING.value)])
    data = FRAME + encode_compact(CompactRecord("Texts", schema, {"s": text, "t": text}))[0]
    python, accelerated = _decoders(schema)
    order = plan_of(schema).schema_order
    assert _outcome(accelerated, data, order, False) == _outcome(python, data, order, False)
    document, plain = accelerated(data, order, False)
    assert json.loads(document) == {"s": text, "t": text} == plain


def test_valid_dates_take_the_fast_path_and_impossible_ones_step_aside() -> None:
    schema = build_schema("Day", [("day", FieldKind.DATE.value)])
    _, accelerated = _decoders(schema)

    def day(year: int, month: int, d: int) -> bytes:
        payload = struct.pack(">ibb", year, month, d)
        return FRAME + struct.pack(">q", schema.schema_id, ) + struct.pack(
            ">i", len(payload)) + payload + bytes([0])  # fmt: skip

    assert accelerated(day(2024, 2, 29))[0] == '{"day": "2024-02-29"}'
    assert accelerated(day(1, 1, 1))[0] == '{"day": "0001-01-01"}'
    with pytest.raises(Fallback):
        accelerated(day(2025, 2, 29))


# -- Load: a stored document's text to bytes -------------------------------------------------


def _text_outcome(schema: Any, text: str, seq: Any, pending: bool) -> tuple[str, Any]:
    """What the accelerator's text encoder does with ``text``."""
    encoder = compiled_codecs._accelerated_text_encoder(plan_of(schema))
    try:
        return "ok", encoder(text, seq, pending)
    except Fallback:
        return "fallback", None
    except WriteOrderNeeded as exc:
        return "order-needed", (exc.schema_id, exc.order)


def _reference(schema: Any, text: str, seq: Any, pending: bool) -> tuple[str, Any]:
    """What the pure-Python path does: parse (strictly), then the generated encoder."""
    try:
        document = loads(text)
    except DecodeError:
        return "invalid", None
    if type(document) is not dict:
        return "fallback", None
    try:
        return "ok", compiled_codecs._compile_encoder(plan_of(schema))(document, seq, pending)
    except Fallback:
        return "fallback", None
    except WriteOrderNeeded as exc:
        return "order-needed", (exc.schema_id, exc.order)


def _jsonb_text(document: dict[str, Any]) -> str:
    """The text PostgreSQL's JSONB gives back: keys by length then bytes."""
    keys = sorted(document, key=lambda k: (len(k.encode()), k.encode()))
    pairs = [f"{json.dumps(k, ensure_ascii=False)}: {json.dumps(document[k], ensure_ascii=False)}"
             for k in keys]  # fmt: skip
    return "{" + ", ".join(pairs) + "}"


def _check_text(schema: Any, text: str, draw: Any, *, plain: bool) -> None:
    """The accelerator's answer is the reference's, or Fallback (the reference then runs);
    on the forms it is for (``plain``: no escape, no "@order") it must not step aside."""
    for rank_seq_pending in _orders(draw, schema):
        rank, pending = rank_seq_pending
        plan = plan_of(schema)
        seq = plan.schema_order if rank is plan.schema_order else tuple(
            sorted(range(len(rank)), key=rank.__getitem__))  # fmt: skip
        fast = _text_outcome(schema, text, seq, pending)
        reference = _reference(schema, text, seq, pending)
        if fast[0] == "fallback":
            assert not (plain and reference[0] == "ok" and _plain_values(text)), (
                f"stepped aside on a plain document the reference encodes: {text}"
            )
            continue
        assert fast == reference, text


def _plain_values(text: str) -> bool:
    """No escape, no "@order", no float/decimal/date/time form the helpers decide."""
    return "\\" not in text and "@order" not in text


@SETTINGS
@given(flat_records(), st.data())
def test_text_encoder_equals_parse_and_encode_on_generated_documents(
    record: CompactRecord, draw: Any
) -> None:
    schema = record.schema
    codec = _codec_of(schema)
    data = FRAME + encode_compact(record)[0]
    text = codec.decode_value(data).stored.document
    document = json.loads(text)
    variants = [
        text,
        _jsonb_text(document),
        json.dumps(document, separators=(",", ":"), ensure_ascii=False),
        " \n" + json.dumps(document, indent=1, ensure_ascii=False) + "\t ",
        json.dumps(document),  # ASCII escapes: the text encoder steps aside
    ]
    for n, variant in enumerate(variants):
        _check_text(schema, variant, draw, plain=n < 4)


#: JSON value forms: numbers at and past each integer width, floats, specials, decimals,
#: dates and times (valid or not), escapes, control characters, nested values.
_VALUE_FORMS = [
     "0", "-0", "1", "-1", "10.0", "1e5", "1E+5", "1e-400", "1e400", "-0.0", "00", "1.", ".5",
     "01", "-", "1e", "127", "128", "-129", "32767", "2147483648", "9223372036854775807",
     "9223372036854775808", "-9223372036854775808", "18446744073709551616", "1" * 25,
     "true", "false", "null", "NaN", "Infinity", '"NaN"', '"-0.0"', '"Infinity"', '"12.50"',
     '"-0.00"', '"5."', '"1E+3"', '"0.000000000000000001"', '"1234567890123456789"',
     '"-999999999999999999"', '"2024-02-29"', '"2025-02-29"', '"0000-01-01"', '"9999-12-31"',
     '"13:45:07"', '"24:00:00"', '"2024-02-29T00:00:00"', '"2024-02-29T00:00:00+01:00"',
     '"x"', '"\\u00e9"', '"\x01"', '"é"', "[]", "{}", '{"a": 1}', "[1, 2]", '""']  # fmt: skip
_NUMBER_FORMS = st.sampled_from(_VALUE_FORMS)


@SETTINGS
@given(flat_records(), st.data())
def test_text_encoder_equals_parse_and_encode_on_mutated_documents(
    record: CompactRecord, draw: Any
) -> None:
    schema = record.schema
    codec = _codec_of(schema)
    data = FRAME + encode_compact(record)[0]
    document = json.loads(codec.decode_value(data).stored.document)
    pairs = [(k, json.dumps(v, ensure_ascii=False)) for k, v in document.items()]
    for _ in range(draw.draw(st.integers(1, 3))):
        how = draw.draw(st.sampled_from(["set", "drop", "repeat", "extra", "order", "shuffle"]))
        if how == "set" and pairs:
            at = draw.draw(st.integers(0, len(pairs) - 1))
            pairs[at] = (pairs[at][0], draw.draw(_NUMBER_FORMS))
        elif how == "drop" and pairs:
            pairs.pop(draw.draw(st.integers(0, len(pairs) - 1)))
        elif how == "repeat" and pairs:
            pairs.append(pairs[draw.draw(st.integers(0, len(pairs) - 1))])
        elif how == "extra":
            pairs.append((draw.draw(st.sampled_from(["extra", "@type", ""])), "1"))
        elif how == "order":
            pairs.append(("@order", json.dumps([k for k, _ in pairs][:2])))
        else:
            pairs = draw.draw(st.permutations(pairs))
    separator = draw.draw(st.sampled_from([", ", ",", " , ", ",\n"]))
    text = "{" + separator.join(f"{json.dumps(k)}: {v}" for k, v in pairs) + "}"
    text = draw.draw(st.sampled_from([text, text + " x", text[:-1], "[" + text + "]", text]))
    _check_text(schema, text, draw, plain=False)


#: One field of every flat kind, so that each value form meets each kind below.
_EVERY_FLAT_KIND = build_schema(
    "EveryKind", [(f"f_{kind.name.lower()}", kind.value) for kind in FLAT_KINDS]
)


@pytest.mark.parametrize("field", [f.name for f in _EVERY_FLAT_KIND.fields])
def test_text_encoder_equals_parse_and_encode_for_every_kind_and_value_form(field: str) -> None:
    """Each value form of ``_NUMBER_FORMS`` in each field of a valid document: the accelerator
    encodes exactly what the reference encodes, and refuses what it refuses."""
    schema = _EVERY_FLAT_KIND
    codec = _codec_of(schema)
    record = CompactRecord("EveryKind", schema, {f.name: None for f in schema.fields})
    base = json.loads(
        codec.decode_value(FRAME + encode_compact(_filled(record))[0]).stored.document
    )
    plan = plan_of(schema)
    for form in _VALUE_FORMS:
        pairs = [(k, form if k == field else json.dumps(v, ensure_ascii=False))
                 for k, v in base.items()]  # fmt: skip
        text = "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in pairs) + "}"
        fast = _text_outcome(schema, text, plan.schema_order, False)
        reference = _reference(schema, text, plan.schema_order, False)
        if fast[0] != "fallback":
            assert fast == reference, (field, form)
        elif reference[0] == "ok":
            # It steps aside for an escape only: every other form it reads itself.
            assert "\\" in form, (field, form)


def _filled(record: CompactRecord) -> CompactRecord:
    """``record`` with a plain value in every field."""
    values = {
        FieldKind.BOOLEAN: True, FieldKind.NULLABLE_BOOLEAN: False, FieldKind.STRING: "s",
        FieldKind.DECIMAL: decimal.Decimal("1.5"), FieldKind.DATE: LocalDate(2020, 1, 2),
    }  # fmt: skip
    fields = {}
    for f in record.schema.fields:
        kind = FieldKind(f.kind)
        if kind in values:
            fields[f.name] = values[kind]
        elif "FLOAT" in kind.name:
            fields[f.name] = 1.5
        elif "INT" in kind.name:
            fields[f.name] = 7
        else:
            fields[f.name] = None  # times and timestamps: null is a plain value too
    return CompactRecord(record.type_name, record.schema, fields)


def test_decode_then_load_round_trips_through_both_accelerated_paths() -> None:
    """A record decoded by the accelerator and loaded back by its text encoder is its bytes."""
    schema = build_schema(
        "Trip",
        [("name", FieldKind.STRING.value), ("n", FieldKind.INT64.value),
         ("price", FieldKind.DECIMAL.value), ("day", FieldKind.DATE.value),
         ("on", FieldKind.BOOLEAN.value), ("x", FieldKind.FLOAT64.value),
         ("m", FieldKind.NULLABLE_INT32.value)],
    )  # fmt: skip
    codec = _codec_of(schema)
    record = CompactRecord(
        "Trip", schema,
        {"name": "é\u2028q", "n": -(2**63), "price": decimal.Decimal("-12.50"),
         "day": LocalDate(2024, 2, 29), "on": True, "x": 0.1, "m": None},
    )  # fmt: skip
    data = FRAME + encode_compact(record)[0]
    stored = codec.decode_for_store(data).stored
    assert stored.document == codec.decode_value(data).stored.document
    plan = compiled_codecs.compile_plan(plan_of(codec.registry.get(schema.schema_id)))
    assert plan.text_encoder is not None
    assert plan.text_encoder(stored.document, plan.schema_order, False) == data
    assert plan.text_encoder(_jsonb_text(json.loads(stored.document)), plan.schema_order,
                             False) == data  # fmt: skip
    assert codec.encode_value(stored).data == data


def _codec_of(schema: Any) -> DataCodec:
    registry = SchemaRegistry()
    registry.add(to_record(schema))
    return DataCodec(registry)


# -- which codec runs -------------------------------------------------------------------


def test_the_accelerator_is_the_default_decoder_and_can_be_turned_off() -> None:
    schema = build_schema("Choice", [("n", FieldKind.INT32.value), ("s", FieldKind.STRING.value)])
    try:
        accel.use("disabled")
        assert not accel.enabled()
        assert "pure Python (codec.accelerator is 'disabled'" in accel.status()
        assert type(compiled_codecs.compile_plan(SchemaPlan(schema)).decoder).__name__ == "function"
        accel.use("auto")
        assert accel.enabled()
        assert accel.status() == "codec: compiled accelerator (sidecar.codec._flat)"
        decoder = compiled_codecs.compile_plan(SchemaPlan(schema)).decoder
        assert type(decoder).__name__ == "FlatDecoder"
        accel.use("required")
        assert accel.enabled()
    finally:
        accel.use("auto")


def test_unknown_or_unmet_codec_choice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"codec.accelerator 'fast': expected auto, disabled or"):
        accel.use("fast")
    monkeypatch.setattr(accel, "_flat", None)
    monkeypatch.setattr(accel, "_MISSING", "No module named 'sidecar.codec._flat'")
    with pytest.raises(accel.AcceleratorMissing, match="'required', but the compiled codec"):
        accel.use("required")
    assert not accel.enabled()
    assert accel.status() == (
        "codec: pure Python (the accelerator is not built: No module named 'sidecar.codec._flat')"
    )


def test_install_without_a_compiler_falls_back_and_says_so(tmp_path: Path) -> None:
    """setup.py's build_ext with a failing compiler: the build goes on, with one clear line;
    with HZ_SIDECAR_CODEC__ACCELERATOR=required the same build fails."""
    gcc = shutil.which("gcc")
    if gcc is None:
        missing("gcc is not installed", "Debian: apt-get install gcc")
    command = [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(tmp_path / "lib"),
               "--build-temp", str(tmp_path / "tmp"), "--force"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != accel.ENV}
    env["CC"] = "/bin/false"
    fell_back = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    assert fell_back.returncode == 0, fell_back.stderr
    assert "hz-sidecar: sidecar.codec._flat was not built (CompileError" in fell_back.stderr
    assert "sidecar.providers._pgarrays was not built" in fell_back.stderr
    assert "the pure-Python code will be used" in fell_back.stderr
    assert not list((tmp_path / "lib").rglob("_flat*.so"))
    required = subprocess.run(command, env={**env, accel.ENV: "required"}, cwd=ROOT,
                              capture_output=True, text=True)  # fmt: skip
    assert required.returncode != 0
    assert "HZ_SIDECAR_CODEC__ACCELERATOR=required, but" in required.stderr
    env.pop("CC")
    built = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    assert "was not built" not in built.stderr, built.stderr
    assert list((tmp_path / "lib").rglob("_flat*.so"))
