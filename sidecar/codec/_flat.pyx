# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
"""The optional compiled accelerator of the Store path's flat-record decoder.

:mod:`sidecar.codec.compiled` generates, per flat Compact schema, a Python function
that turns a value's ``Data`` bytes into its JSON document and its plain fields.
:class:`FlatDecoder` does the same work in C, from the same
:class:`~sidecar.codec.plan.SchemaPlan`: same result, and :class:`Fallback` in
exactly the cases the generated function raises it (the generic codec then decides
and explains), ``WriteOrderNeeded`` where it raises that. The differential tests
(``tests/unit/codec/test_codec_accelerator.py``) hold the two to it on generated and
mutated input.

Numbers, booleans, strings, dates and small decimals are read and written here; the
rare values (NaN and the other float specials, float32, large decimals, times,
timestamps, dates outside 1..9999) call the very helpers the generated code calls,
so there is one definition of each JSON form. Everything that can fail on bad
bytes is checked before it is read: a read never leaves the buffer.

This module imports nothing of the sidecar: :func:`configure` hands it the helpers.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdio cimport snprintf
from libc.string cimport memcpy

# Field codes: where a value lives and how it reads.
cdef enum:
    F_INT8 = 1
    F_INT16 = 2
    F_INT32 = 3
    F_INT64 = 4
    F_FLOAT32 = 5
    F_FLOAT64 = 6
    F_BOOLEAN = 7
    V_BOOL = 10
    V_INT8 = 11
    V_INT16 = 12
    V_INT32 = 13
    V_INT64 = 14
    V_FLOAT32 = 15
    V_FLOAT64 = 16
    V_STRING = 17
    V_DECIMAL = 18
    V_DATE = 19
    V_TIME = 20
    V_TIMESTAMP = 21
    V_TIMESTAMP_TZ = 22

#: The codes by the names :mod:`sidecar.codec.accel` uses (the kinds' item names).
FIXED_CODES = {
    "int8": F_INT8, "int16": F_INT16, "int32": F_INT32, "int64": F_INT64,
    "float32": F_FLOAT32, "float64": F_FLOAT64, "bool": F_BOOLEAN,
}
VARIABLE_CODES = {
    "bool": V_BOOL, "int8": V_INT8, "int16": V_INT16, "int32": V_INT32,
    "int64": V_INT64, "float32": V_FLOAT32, "float64": V_FLOAT64, "string": V_STRING,
    "decimal": V_DECIMAL, "date": V_DATE, "time": V_TIME, "timestamp": V_TIMESTAMP,
    "timestamp_tz": V_TIMESTAMP_TZ,
}

cdef enum:
    HEADER = 16  # the Data header (8 bytes) and the schema id (8)
    PLAIN_DECIMAL_MAX_SCALE = 100

# The helpers, from sidecar.codec.compiled (configure()).
cdef object Fallback = None
cdef object _encode_string = None
cdef object _f64_json = None
cdef object _f32_json = None
cdef object _decimal_json = None
cdef object _date_json = None
cdef object _time_json = None
cdef object _timestamp_json = None
cdef object _timestamp_tz_json = None
cdef object _order_needed = None
cdef bint _configured = False


def configure(helpers):
    """Take the helpers of the generated code (a mapping by their names there)."""
    global Fallback, _encode_string, _f64_json, _f32_json, _decimal_json, _date_json
    global _time_json, _timestamp_json, _timestamp_tz_json, _order_needed, _configured
    Fallback = helpers["Fallback"]
    _encode_string = helpers["E"]
    _f64_json = helpers["_f64_json"]
    _f32_json = helpers["_f32_json"]
    _decimal_json = helpers["_decimal_json"]
    _date_json = helpers["_date_json"]
    _time_json = helpers["_time_json"]
    _timestamp_json = helpers["_timestamp_json"]
    _timestamp_tz_json = helpers["_timestamp_tz_json"]
    _order_needed = helpers["_order_needed"]
    _configured = True


cdef inline int32_t _i32(const uint8_t* p) noexcept nogil:
    return <int32_t>((<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3])


cdef inline int16_t _i16(const uint8_t* p) noexcept nogil:
    return <int16_t>((<uint32_t>p[0] << 8) | p[1])


cdef inline int64_t _i64(const uint8_t* p) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    for i in range(8):
        v = (v << 8) | p[i]
    return <int64_t>v


cdef inline double _f64(const uint8_t* p) noexcept nogil:
    cdef uint64_t v = <uint64_t>_i64(p)
    cdef double d
    memcpy(&d, &v, 8)
    return d


cdef inline float _f32(const uint8_t* p) noexcept nogil:
    cdef uint32_t v = <uint32_t>_i32(p)
    cdef float f
    memcpy(&f, &v, 4)
    return f


cdef inline str _int_text(int64_t value):
    cdef char text[24]
    cdef int n = snprintf(text, 24, "%lld", <long long>value)
    return text[:n].decode("ascii")


cdef inline bint _plain_double(double value) noexcept nogil:
    # What the generated code writes as `s - s == 0.0 and s != 0.0`: finite, non-zero.
    return value - value == 0.0 and value != 0.0


cdef inline bint _leap(int32_t year) noexcept nogil:
    return (year % 4 == 0 and year % 100 != 0) or year % 400 == 0


cdef int _days_in_month(int32_t year, int month) noexcept nogil:
    if month == 2:
        return 29 if _leap(year) else 28
    if month == 4 or month == 6 or month == 9 or month == 11:
        return 30
    return 31


cdef object _date_text(int32_t year, int8_t month, int8_t day):
    """The ISO text of a date (``_date_json``), in C for years 1..9999."""
    cdef char text[16]
    cdef int n
    if 1 <= year <= 9999:
        if month < 1 or month > 12 or day < 1 or day > _days_in_month(year, month):
            raise Fallback  # datetime.date refuses it; the generic path explains
        n = snprintf(text, 16, "%04d-%02d-%02d", <int>year, <int>month, <int>day)
        return text[:n].decode("ascii")
    return _date_json(year, month, day)


cdef object _decimal_text(const uint8_t* p, Py_ssize_t n, int32_t scale, object buf,
                          Py_ssize_t at):
    """``_decimal_json`` of the ``n`` two's-complement bytes at ``p`` (minimal, checked)."""
    cdef int64_t u
    cdef uint64_t magnitude, x
    cdef int bits = 0
    cdef int i, k
    cdef char digits[24]
    cdef char text[160]
    cdef int count = 0
    cdef int length = 0
    cdef int total
    if n > 8:
        value = int.from_bytes(buf[at:at + n], "big", signed=True)
        if (8 + (value + (value < 0)).bit_length()) // 8 != n:
            raise Fallback
        return _decimal_json(value, scale)
    u = -1 if p[0] & 0x80 else 0
    for i in range(n):
        u = <int64_t>((<uint64_t>u << 8) | p[i])
    # Minimal length: as many bytes as the sign bit and the magnitude's bits need.
    x = <uint64_t>(-(u + 1)) if u < 0 else <uint64_t>u
    while x:
        bits += 1
        x >>= 1
    if (8 + bits) // 8 != n:
        raise Fallback
    if scale < 0 or scale > PLAIN_DECIMAL_MAX_SCALE:
        return _decimal_json(u, scale)
    magnitude = (<uint64_t>0 - <uint64_t>u) if u < 0 else <uint64_t>u
    while True:  # the magnitude's digits, least significant first
        digits[count] = <char>(48 + magnitude % 10)
        count += 1
        magnitude //= 10
        if magnitude == 0:
            break
    # As the generated code writes it: the digits right-justified to scale + 1 with
    # zeros, and the point before the last ``scale`` of them.
    total = count if count > scale + 1 else scale + 1
    if u < 0:
        text[length] = <char>45  # -
        length += 1
    for k in range(total):
        if scale and k == total - scale:
            text[length] = <char>46  # .
            length += 1
        text[length] = digits[total - 1 - k] if total - 1 - k < count else <char>48
        length += 1
    return text[:length].decode("ascii")


cdef inline object _float_json_text(object value):
    """The JSON text of a float field's JSON value (a float, or a special's string)."""
    if type(value) is float:
        return repr(value)
    return _encode_string(value)


cdef class FlatDecoder:
    """A flat schema's decoder: ``(buf, rank, pending) -> (document, plain fields)``.

    Built by :func:`sidecar.codec.accel.flat_decoder` from a schema's plan; see the
    module's notes for its contract.
    """

    cdef int nfields
    cdef int var_count
    cdef int fix_len
    cdef int nbools
    cdef int64_t schema_id
    cdef int* codes       # per field: F_* or V_*
    cdef int* where       # fixed: byte position; variable: offset-table index
    cdef int* bit         # BOOLEAN: bit position
    cdef int* number      # variable: the field's number among the variable-size ones
    cdef bint* plain      # whether the value goes into the plain fields
    cdef int* bool_at     # boolean byte positions
    cdef int* bool_mask   # and their used bits
    cdef tuple prefixes   # '{"name": ' / ', "name": '
    cdef tuple names
    cdef tuple var_json   # each variable-size field's name as JSON text
    cdef tuple var_names
    cdef readonly tuple schema_order

    def __cinit__(self):
        self.codes = NULL
        self.where = NULL
        self.bit = NULL
        self.number = NULL
        self.plain = NULL
        self.bool_at = NULL
        self.bool_mask = NULL

    def __init__(self, int64_t schema_id, int fix_len, fields, bool_masks, tuple var_names,
                 tuple var_json, tuple schema_order):
        """``fields``: per field in schema order, (code, where, bit, number, plain,
        name, JSON key prefix); ``bool_masks``: (byte position, used bits) pairs."""
        if not _configured:
            raise RuntimeError("sidecar.codec._flat.configure() was not called")
        cdef int n = len(fields)
        cdef int i
        self.nfields = n
        self.schema_id = schema_id
        self.fix_len = fix_len
        self.var_count = len(var_names)
        self.var_names = var_names
        self.var_json = var_json
        self.schema_order = schema_order
        self.codes = <int*>PyMem_Malloc(max(n, 1) * sizeof(int))
        self.where = <int*>PyMem_Malloc(max(n, 1) * sizeof(int))
        self.bit = <int*>PyMem_Malloc(max(n, 1) * sizeof(int))
        self.number = <int*>PyMem_Malloc(max(n, 1) * sizeof(int))
        self.plain = <bint*>PyMem_Malloc(max(n, 1) * sizeof(bint))
        self.nbools = len(bool_masks)
        self.bool_at = <int*>PyMem_Malloc(max(self.nbools, 1) * sizeof(int))
        self.bool_mask = <int*>PyMem_Malloc(max(self.nbools, 1) * sizeof(int))
        if (self.codes == NULL or self.where == NULL or self.bit == NULL
                or self.number == NULL or self.plain == NULL or self.bool_at == NULL
                or self.bool_mask == NULL):
            raise MemoryError()
        names = []
        prefixes = []
        for i in range(n):
            code, where, bit, number, plain, name, prefix = fields[i]
            self.codes[i] = code
            self.where[i] = where
            self.bit[i] = bit
            self.number[i] = number
            self.plain[i] = plain
            names.append(name)
            prefixes.append(prefix)
        self.names = tuple(names)
        self.prefixes = tuple(prefixes)
        for i in range(self.nbools):
            self.bool_at[i], self.bool_mask[i] = bool_masks[i]

    def __dealloc__(self):
        PyMem_Free(self.codes)
        PyMem_Free(self.where)
        PyMem_Free(self.bit)
        PyMem_Free(self.number)
        PyMem_Free(self.plain)
        PyMem_Free(self.bool_at)
        PyMem_Free(self.bool_mask)

    def __call__(self, buf, rank=None, pending=False):
        if type(buf) is not bytes:
            buf = bytes(buf)
        if rank is None:
            rank = self.schema_order
        cdef int var_count = self.var_count
        cdef int64_t* scratch = NULL
        if var_count:
            # offsets, then the spans' (offset, end, number), one allocation per call.
            scratch = <int64_t*>PyMem_Malloc(4 * var_count * sizeof(int64_t))
            if scratch == NULL:
                raise MemoryError()
        try:
            return self._decode(<bytes>buf, <tuple>rank, bool(pending), scratch)
        finally:
            PyMem_Free(scratch)

    cdef object _decode(self, bytes buf, tuple rank, bint pending, int64_t* scratch):
        cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(buf)
        cdef Py_ssize_t end = PyBytes_GET_SIZE(buf)
        cdef int var_count = self.var_count
        cdef int fix_len = self.fix_len
        cdef Py_ssize_t ds, dl = 0, table = 0, a, e
        cdef int64_t o, null = -1
        cdef int width = 0
        cdef int i, j, code, nspans = 0
        cdef int64_t* offsets = scratch
        cdef int64_t* span_off = scratch + var_count if var_count else NULL
        cdef int64_t* span_end = scratch + 2 * var_count if var_count else NULL
        cdef int64_t* span_num = scratch + 3 * var_count if var_count else NULL
        cdef int64_t t_off, t_end, t_num
        cdef int32_t n32
        cdef int64_t iv
        cdef double d
        cdef uint8_t b
        if var_count:
            if end < HEADER + 4:
                raise Fallback
            dl = _i32(p + HEADER)
            ds = HEADER + 4
            if dl < fix_len:
                raise Fallback
            table = ds + dl
            if dl < 255:
                width, null = 1, 0xFF
            elif dl < 65535:
                width, null = 2, 0xFFFF
            else:
                width, null = 4, -1
            if table + var_count * width != end:
                raise Fallback
            for i in range(var_count):
                if width == 1:
                    offsets[i] = p[table + i]
                elif width == 2:
                    offsets[i] = (<uint32_t>p[table + 2 * i] << 8) | p[table + 2 * i + 1]
                else:
                    offsets[i] = _i32(p + table + 4 * i)
        else:
            ds = HEADER
            if ds + fix_len != end:
                raise Fallback
        for i in range(self.nbools):
            if p[ds + self.bool_at[i]] & (0xFF & ~self.bool_mask[i]):
                raise Fallback
        cdef list pieces = []
        cdef dict plain = {}
        cdef object value, text
        for i in range(self.nfields):
            code = self.codes[i]
            pieces.append(self.prefixes[i])
            if code < V_BOOL:
                a = ds + self.where[i]
                if code == F_FLOAT64:
                    d = _f64(p + a)
                    pieces.append(_float_json_text(d if _plain_double(d) else _f64_json(d)))
                    continue
                if code == F_FLOAT32:
                    pieces.append(_float_json_text(_f32_json(<double>_f32(p + a))))
                    continue
                if code == F_BOOLEAN:
                    value = (p[a] >> self.bit[i]) & 1 == 1
                    pieces.append("true" if value else "false")
                elif code == F_INT64:
                    iv = _i64(p + a)
                    value = iv
                    pieces.append(_int_text(iv))
                elif code == F_INT32:
                    iv = _i32(p + a)
                    value = iv
                    pieces.append(_int_text(iv))
                elif code == F_INT16:
                    iv = _i16(p + a)
                    value = iv
                    pieces.append(_int_text(iv))
                else:  # F_INT8
                    iv = <int8_t>p[a]
                    value = iv
                    pieces.append(_int_text(iv))
                if self.plain[i]:
                    plain[self.names[i]] = value
                continue
            o = offsets[self.where[i]]
            if o == null:
                pieces.append("null")
                if self.plain[i]:
                    plain[self.names[i]] = None
                continue
            if not fix_len <= o < dl:
                raise Fallback
            a = ds + o
            if code == V_STRING:
                if a + 4 > table:
                    raise Fallback
                n32 = _i32(p + a)
                if n32 < 0:
                    raise Fallback
                e = a + 4 + n32
                if e > table:
                    raise Fallback
                try:
                    value = PyUnicode_DecodeUTF8(<char*>(p + a + 4), n32, NULL)
                except UnicodeDecodeError:
                    raise Fallback from None
                text = _encode_string(value)
            elif code == V_DECIMAL:
                if a + 4 > table:
                    raise Fallback
                n32 = _i32(p + a)
                e = a + 8 + n32
                if n32 <= 0 or e > table:
                    raise Fallback
                value = _decimal_text(p + a + 4, n32, _i32(p + e - 4), buf, a + 4)
                text = _encode_string(value)
            elif code == V_BOOL:
                b = p[a]
                if b > 1:
                    raise Fallback
                e = a + 1
                value = b == 1
                text = "true" if value else "false"
            elif code == V_INT64:
                e = a + 8
                if e > table:
                    raise Fallback
                iv = _i64(p + a)
                value = iv
                text = _int_text(iv)
            elif code == V_INT32:
                e = a + 4
                if e > table:
                    raise Fallback
                iv = _i32(p + a)
                value = iv
                text = _int_text(iv)
            elif code == V_INT16:
                e = a + 2
                if e > table:
                    raise Fallback
                iv = _i16(p + a)
                value = iv
                text = _int_text(iv)
            elif code == V_INT8:
                e = a + 1
                iv = <int8_t>p[a]
                value = iv
                text = _int_text(iv)
            elif code == V_FLOAT64:
                e = a + 8
                if e > table:
                    raise Fallback
                d = _f64(p + a)
                value = d if _plain_double(d) else _f64_json(d)
                text = _float_json_text(value)
            elif code == V_FLOAT32:
                e = a + 4
                if e > table:
                    raise Fallback
                value = _f32_json(<double>_f32(p + a))
                text = _float_json_text(value)
            elif code == V_DATE:
                e = a + 6
                if e > table:
                    raise Fallback
                value = _date_text(_i32(p + a), <int8_t>p[a + 4], <int8_t>p[a + 5])
                text = _encode_string(value)
            elif code == V_TIME:
                e = a + 7
                if e > table:
                    raise Fallback
                value = _time_json(<int8_t>p[a], <int8_t>p[a + 1], <int8_t>p[a + 2],
                                   _i32(p + a + 3))
                text = _encode_string(value)
            elif code == V_TIMESTAMP:
                e = a + 13
                if e > table:
                    raise Fallback
                value = _timestamp_json(_i32(p + a), <int8_t>p[a + 4], <int8_t>p[a + 5],
                                        <int8_t>p[a + 6], <int8_t>p[a + 7], <int8_t>p[a + 8],
                                        _i32(p + a + 9))
                text = _encode_string(value)
            elif code == V_TIMESTAMP_TZ:
                e = a + 17
                if e > table:
                    raise Fallback
                value = _timestamp_tz_json(_i32(p + a), <int8_t>p[a + 4], <int8_t>p[a + 5],
                                           <int8_t>p[a + 6], <int8_t>p[a + 7],
                                           <int8_t>p[a + 8], _i32(p + a + 9),
                                           _i32(p + a + 13))
                text = _encode_string(value)
            else:
                raise AssertionError(f"unknown field code {code}")
            pieces.append(text)
            if self.plain[i]:
                plain[self.names[i]] = value
            # The span, kept sorted by (offset, end, number) as it is inserted.
            t_off, t_end, t_num = o, e - ds, self.number[i]
            j = nspans
            while j > 0 and (span_off[j - 1] > t_off or (span_off[j - 1] == t_off and (
                    span_end[j - 1] > t_end or (span_end[j - 1] == t_end
                                                and span_num[j - 1] > t_num)))):
                span_off[j] = span_off[j - 1]
                span_end[j] = span_end[j - 1]
                span_num[j] = span_num[j - 1]
                j -= 1
            span_off[j] = t_off
            span_end[j] = t_end
            span_num[j] = t_num
            nspans += 1
        if not var_count:
            pieces.append("}" if self.nfields else "{}")
            return "".join(pieces), plain
        # The spans tile the variable-size data exactly; in the write order or not.
        cdef int64_t expected = fix_len
        cdef bint in_order = True
        cdef Py_ssize_t last = -1, place
        for j in range(nspans):
            if span_off[j] != expected:
                raise Fallback
            expected = span_end[j]
            place = rank[span_num[j]]
            if place < last:
                in_order = False
            last = place
        if expected != dl:
            raise Fallback
        if pending and nspans > 1:
            if nspans == var_count:
                _order_needed(self.schema_id,
                              [(span_off[j], span_end[j], span_num[j]) for j in range(nspans)],
                              self.var_names)
            in_order = False
        if in_order:
            pieces.append("}")
        else:
            pieces.append(', "@order": [')
            pieces.append(", ".join([self.var_json[span_num[j]] for j in range(nspans)]))
            pieces.append("]}")
        return "".join(pieces), plain

