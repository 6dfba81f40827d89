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
from cpython.conversion cimport PyOS_double_to_string
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.string cimport memcmp, memset
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdio cimport snprintf
from libc.string cimport memcpy, strlen

cdef extern from "Python.h":
    int Py_DTSF_ADD_DOT_0

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
cdef object _f64_json = None
cdef object _f32_json = None
cdef object _decimal_json = None
cdef object _date_json = None
cdef object _time_json = None
cdef object _timestamp_json = None
cdef object _timestamp_tz_json = None
cdef object _order_needed = None
cdef object _WriteOrderNeeded = None
cdef object _float_value = None
cdef object _decimal_parts = None
cdef object _decimal_bytes = None
cdef object _date_value = None
cdef object _time_value = None
cdef object _timestamp_value = None
cdef object _timestamp_tz_value = None
cdef object _structs = None
cdef bint _configured = False


def configure(helpers, structs):
    """Take the helpers of the generated code (a mapping by their names there) and the
    structs of the items (``sidecar.codec.kinds.ITEM_STRUCTS``)."""
    global Fallback, _f64_json, _f32_json, _decimal_json, _date_json
    global _time_json, _timestamp_json, _timestamp_tz_json, _order_needed, _configured
    global _WriteOrderNeeded, _float_value, _decimal_parts, _decimal_bytes, _date_value
    global _time_value, _timestamp_value, _timestamp_tz_value, _structs
    Fallback = helpers["Fallback"]
    _f64_json = helpers["_f64_json"]
    _f32_json = helpers["_f32_json"]
    _decimal_json = helpers["_decimal_json"]
    _date_json = helpers["_date_json"]
    _time_json = helpers["_time_json"]
    _timestamp_json = helpers["_timestamp_json"]
    _timestamp_tz_json = helpers["_timestamp_tz_json"]
    _order_needed = helpers["_order_needed"]
    _WriteOrderNeeded = helpers["WriteOrderNeeded"]
    _float_value = helpers["_float_value"]
    _decimal_parts = helpers["_decimal_parts"]
    _decimal_bytes = helpers["_decimal_bytes"]
    _date_value = helpers["_date_value"]
    _time_value = helpers["_time_value"]
    _timestamp_value = helpers["_timestamp_value"]
    _timestamp_tz_value = helpers["_timestamp_tz_value"]
    _structs = structs
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


# -- the document's text, written as UTF-8 into one growing buffer --------------------------

cdef struct Text:
    char* data
    Py_ssize_t length
    Py_ssize_t capacity


cdef int _reserve(Text* t, Py_ssize_t more) except -1:
    cdef Py_ssize_t wanted = t.length + more
    cdef char* grown
    if wanted <= t.capacity:
        return 0
    wanted = max(wanted, 2 * t.capacity)
    grown = <char*>PyMem_Realloc(t.data, wanted)
    if grown == NULL:
        raise MemoryError()
    t.data = grown
    t.capacity = wanted
    return 0


cdef inline int _add(Text* t, const char* s, Py_ssize_t n) except -1:
    _reserve(t, n)
    memcpy(t.data + t.length, s, n)
    t.length += n
    return 0


cdef inline int _add_bytes(Text* t, bytes s) except -1:
    return _add(t, PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s))


cdef int _add_int(Text* t, int64_t value) except -1:
    cdef char text[24]
    cdef int n = snprintf(text, 24, "%lld", <long long>value)
    return _add(t, text, n)


cdef int _add_json_utf8(Text* t, const uint8_t* s, Py_ssize_t n) except -1:
    """A JSON string of the UTF-8 ``s``, escaped as json's encode_basestring escapes."""
    cdef Py_ssize_t i
    cdef uint8_t c
    cdef char* out
    _reserve(t, 6 * n + 2)  # at worst every byte a \u00XX
    out = t.data + t.length
    out[0] = 34
    out += 1
    for i in range(n):
        c = s[i]
        if c >= 32 and c != 34 and c != 92:
            out[0] = <char>c
            out += 1
            continue
        out[0] = 92
        if c == 34 or c == 92:
            out[1] = <char>c
        elif c == 8:
            out[1] = 98  # b
        elif c == 12:
            out[1] = 102  # f
        elif c == 10:
            out[1] = 110  # n
        elif c == 13:
            out[1] = 114  # r
        elif c == 9:
            out[1] = 116  # t
        else:
            out[1] = 117  # u00XX, lowercase hexadecimal as json writes it
            out[2] = 48
            out[3] = 48
            out[4] = b"0123456789abcdef"[c >> 4]
            out[5] = b"0123456789abcdef"[c & 15]
            out += 6
            continue
        out += 2
    out[0] = 34
    out += 1
    t.length = out - t.data
    return 0


cdef int _add_json_str(Text* t, str value) except -1:
    cdef Py_ssize_t n
    cdef const char* s = PyUnicode_AsUTF8AndSize(value, &n)
    return _add_json_utf8(t, <const uint8_t*>s, n)


cdef int _add_float_json(Text* t, object value) except -1:
    """A float field's JSON value: a number as repr writes it, or a special's string."""
    cdef char* text
    if type(value) is float:
        text = PyOS_double_to_string(<double>value, b"r", 0, Py_DTSF_ADD_DOT_0, NULL)
        try:
            _add(t, text, strlen(text))
        finally:
            PyMem_Free(text)
        return 0
    return _add_json_str(t, value)


cdef int _add_double(Text* t, double value) except -1:
    cdef char* text = PyOS_double_to_string(value, b"r", 0, Py_DTSF_ADD_DOT_0, NULL)
    try:
        _add(t, text, strlen(text))
    finally:
        PyMem_Free(text)
    return 0


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
    cdef Py_ssize_t text_hint  # the names' share of a document's length

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
            prefixes.append(prefix.encode("utf-8"))
        self.names = tuple(names)
        self.prefixes = tuple(prefixes)
        self.var_json = tuple(name.encode("utf-8") for name in var_json)
        self.text_hint = sum(len(prefix) for prefix in prefixes) + 64
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
        cdef Py_ssize_t ds, dl = 0, table = 0
        cdef int64_t null = -1
        cdef int width = 0
        cdef int i, nspans = 0
        cdef int64_t* offsets = scratch
        cdef int64_t* span_off = scratch + var_count if var_count else NULL
        cdef int64_t* span_end = scratch + 2 * var_count if var_count else NULL
        cdef int64_t* span_num = scratch + 3 * var_count if var_count else NULL
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
        cdef Text out
        out.data = NULL
        out.length = 0
        out.capacity = 0
        _reserve(&out, self.text_hint + 2 * end)
        try:
            plain = self._fields(buf, p, ds, dl, table, null, offsets, span_off, span_end,
                                 span_num, &nspans, &out)
            if not var_count:
                if self.nfields:
                    _add(&out, "}", 1)
                else:
                    _add(&out, "{}", 2)
                return PyUnicode_DecodeUTF8(out.data, out.length, NULL), plain
            self._tail(rank, pending, dl, span_off, span_end, span_num, nspans, &out)
            return PyUnicode_DecodeUTF8(out.data, out.length, NULL), plain
        finally:
            PyMem_Free(out.data)

    cdef dict _fields(self, bytes buf, const uint8_t* p, Py_ssize_t ds, Py_ssize_t dl,
                      Py_ssize_t table, int64_t null, int64_t* offsets, int64_t* span_off,
                      int64_t* span_end, int64_t* span_num, int* count, Text* out):
        """Each field's JSON into ``out``, the plain fields returned, the spans recorded."""
        cdef int fix_len = self.fix_len
        cdef int i, j, code, nspans = 0
        cdef Py_ssize_t a, e
        cdef int64_t o, t_off, t_end, t_num
        cdef int32_t n32
        cdef int64_t iv
        cdef double d
        cdef uint8_t b
        cdef dict plain = {}
        cdef object value
        for i in range(self.nfields):
            code = self.codes[i]
            _add_bytes(out, <bytes>self.prefixes[i])
            if code < V_BOOL:
                a = ds + self.where[i]
                if code == F_FLOAT64:
                    d = _f64(p + a)
                    if _plain_double(d):
                        _add_double(out, d)
                    else:
                        _add_float_json(out, _f64_json(d))
                    continue
                if code == F_FLOAT32:
                    _add_float_json(out, _f32_json(<double>_f32(p + a)))
                    continue
                if code == F_BOOLEAN:
                    if (p[a] >> self.bit[i]) & 1:
                        _add(out, "true", 4)
                        value = True
                    else:
                        _add(out, "false", 5)
                        value = False
                else:
                    if code == F_INT64:
                        iv = _i64(p + a)
                    elif code == F_INT32:
                        iv = _i32(p + a)
                    elif code == F_INT16:
                        iv = _i16(p + a)
                    else:  # F_INT8
                        iv = <int8_t>p[a]
                    _add_int(out, iv)
                    if not self.plain[i]:
                        continue
                    value = iv
                if self.plain[i]:
                    plain[self.names[i]] = value
                continue
            o = offsets[self.where[i]]
            if o == null:
                _add(out, "null", 4)
                if self.plain[i]:
                    plain[self.names[i]] = None
                continue
            if not fix_len <= o < dl:
                raise Fallback
            a = ds + o
            value = None
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
                _add_json_utf8(out, p + a + 4, n32)
            elif code == V_DECIMAL:
                if a + 4 > table:
                    raise Fallback
                n32 = _i32(p + a)
                e = a + 8 + n32
                if n32 <= 0 or e > table:
                    raise Fallback
                _add_json_str(out, _decimal_text(p + a + 4, n32, _i32(p + e - 4), buf, a + 4))
            elif code == V_BOOL:
                b = p[a]
                if b > 1:
                    raise Fallback
                e = a + 1
                value = b == 1
                if b:
                    _add(out, "true", 4)
                else:
                    _add(out, "false", 5)
            elif code == V_INT64 or code == V_INT32 or code == V_INT16 or code == V_INT8:
                if code == V_INT64:
                    e = a + 8
                elif code == V_INT32:
                    e = a + 4
                elif code == V_INT16:
                    e = a + 2
                else:
                    e = a + 1
                if e > table:
                    raise Fallback
                if code == V_INT64:
                    iv = _i64(p + a)
                elif code == V_INT32:
                    iv = _i32(p + a)
                elif code == V_INT16:
                    iv = _i16(p + a)
                else:
                    iv = <int8_t>p[a]
                _add_int(out, iv)
                value = iv
            elif code == V_FLOAT64:
                e = a + 8
                if e > table:
                    raise Fallback
                d = _f64(p + a)
                if _plain_double(d):
                    _add_double(out, d)
                else:
                    _add_float_json(out, _f64_json(d))
            elif code == V_FLOAT32:
                e = a + 4
                if e > table:
                    raise Fallback
                _add_float_json(out, _f32_json(<double>_f32(p + a)))
            elif code == V_DATE:
                e = a + 6
                if e > table:
                    raise Fallback
                _add_json_str(out, _date_text(_i32(p + a), <int8_t>p[a + 4], <int8_t>p[a + 5]))
            elif code == V_TIME:
                e = a + 7
                if e > table:
                    raise Fallback
                _add_json_str(out, _time_json(<int8_t>p[a], <int8_t>p[a + 1], <int8_t>p[a + 2],
                                              _i32(p + a + 3)))
            elif code == V_TIMESTAMP:
                e = a + 13
                if e > table:
                    raise Fallback
                value = _timestamp_json(_i32(p + a), <int8_t>p[a + 4], <int8_t>p[a + 5],
                                        <int8_t>p[a + 6], <int8_t>p[a + 7], <int8_t>p[a + 8],
                                        _i32(p + a + 9))
                _add_json_str(out, value)
            elif code == V_TIMESTAMP_TZ:
                e = a + 17
                if e > table:
                    raise Fallback
                value = _timestamp_tz_json(_i32(p + a), <int8_t>p[a + 4], <int8_t>p[a + 5],
                                           <int8_t>p[a + 6], <int8_t>p[a + 7],
                                           <int8_t>p[a + 8], _i32(p + a + 9),
                                           _i32(p + a + 13))
                _add_json_str(out, value)
            else:
                raise AssertionError(f"unknown field code {code}")
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
        count[0] = nspans
        return plain

    cdef int _tail(self, tuple rank, bint pending, Py_ssize_t dl, int64_t* span_off,
                   int64_t* span_end, int64_t* span_num, int nspans, Text* out) except -1:
        """Check that the spans tile the variable-size data exactly; close the document,
        with "@order" when the data is not in the write order."""
        cdef int64_t expected = self.fix_len
        cdef bint in_order = True
        cdef Py_ssize_t last = -1, place
        cdef int j
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
            if nspans == self.var_count:
                _order_needed(self.schema_id,
                              [(span_off[j], span_end[j], span_num[j]) for j in range(nspans)],
                              self.var_names)
            in_order = False
        if in_order:
            return _add(out, "}", 1)
        _add(out, ', "@order": [', 13)
        for j in range(nspans):
            if j:
                _add(out, ", ", 2)
            _add_bytes(out, <bytes>self.var_json[span_num[j]])
        return _add(out, "]}", 2)


# -- Load: a stored document's text straight to Data bytes ----------------------------------

cdef enum:
    T_STRING = 1
    T_INT = 2
    T_FLOAT = 3
    T_TRUE = 4
    T_FALSE = 5
    T_NULL = 6

cdef enum:
    P_NULL = 0     # a null variable-size value
    P_STRING = 1   # a string: its length, then its UTF-8 bytes from the document
    P_SCRATCH = 2  # bytes written in the call's scratch buffer
    P_OBJECT = 3   # a bytes object a helper made


cdef inline bint _space(uint8_t c) noexcept nogil:
    return c == 32 or c == 10 or c == 13 or c == 9


cdef inline void _put_be(uint8_t* out, uint64_t value, int size) noexcept nogil:
    cdef int i
    for i in range(size - 1, -1, -1):
        out[i] = <uint8_t>(value & 0xFF)
        value >>= 8


cdef class FlatEncoder:
    """A flat schema's encoder of a stored document's JSON text: ``(text, seq, pending) ->
    Data bytes``, the same bytes as the generated encoder gives for ``loads(text)``.

    It reads the JSON object itself, keys in any order (PostgreSQL's JSONB sorts them),
    and raises :class:`Fallback` for whatever it does not read the way ``json.loads``
    does or leaves to the helpers' judgement: escapes in strings, ``"@order"``, a
    repeated, missing or unknown key, nested values, anything that is not JSON. The
    caller then parses the document and runs the generated encoder, which decides.
    """

    cdef int nfields
    cdef int var_count
    cdef int fix_len
    cdef int64_t schema_id
    cdef int* codes
    cdef int* where
    cdef int* bit
    cdef int* number
    cdef int* table_index  # by variable-size field number: its offset-table index
    cdef tuple names       # each field's name as UTF-8 bytes
    cdef readonly tuple schema_order
    cdef bytes prefix      # the Data header and the schema id

    def __cinit__(self):
        self.codes = NULL
        self.where = NULL
        self.bit = NULL
        self.number = NULL
        self.table_index = NULL

    def __init__(self, int64_t schema_id, int fix_len, fields, tuple schema_order,
                 bytes prefix):
        """``fields``: per field in schema order, (code, where, bit, number, name)."""
        if not _configured:
            raise RuntimeError("sidecar.codec._flat.configure() was not called")
        cdef int n = len(fields)
        cdef int i
        self.nfields = n
        self.schema_id = schema_id
        self.fix_len = fix_len
        self.schema_order = schema_order
        self.var_count = len(schema_order)
        self.prefix = prefix
        self.codes = <int*>PyMem_Malloc(max(n, 1) * sizeof(int))
        self.where = <int*>PyMem_Malloc(max(n, 1) * sizeof(int))
        self.bit = <int*>PyMem_Malloc(max(n, 1) * sizeof(int))
        self.number = <int*>PyMem_Malloc(max(n, 1) * sizeof(int))
        self.table_index = <int*>PyMem_Malloc(max(self.var_count, 1) * sizeof(int))
        if (self.codes == NULL or self.where == NULL or self.bit == NULL
                or self.number == NULL or self.table_index == NULL):
            raise MemoryError()
        names = []
        for i in range(n):
            code, where, bit, number, name = fields[i]
            self.codes[i] = code
            self.where[i] = where
            self.bit[i] = bit
            self.number[i] = number
            if number >= 0:
                self.table_index[number] = where
            names.append(name.encode("utf-8"))
        self.names = tuple(names)

    def __dealloc__(self):
        PyMem_Free(self.codes)
        PyMem_Free(self.where)
        PyMem_Free(self.bit)
        PyMem_Free(self.number)
        PyMem_Free(self.table_index)

    def __call__(self, document, seq=None, pending=False):
        if type(document) is not str:
            raise Fallback
        if seq is None:
            seq = self.schema_order
        cdef Py_ssize_t size
        cdef const char* text
        try:
            text = PyUnicode_AsUTF8AndSize(document, &size)
        except UnicodeEncodeError:  # a lone surrogate: the generated encoder refuses it too
            raise Fallback from None
        cdef int n = self.nfields
        cdef int v = self.var_count
        # Per field: the token (kind, start, end); per variable-size field: its part.
        cdef Py_ssize_t* ints = <Py_ssize_t*>PyMem_Malloc(
            (3 * max(n, 1) + 3 * max(v, 1)) * sizeof(Py_ssize_t))
        cdef uint8_t* scratch = <uint8_t*>PyMem_Malloc(self.fix_len + 24 * max(v, 1) + 1)
        if ints == NULL or scratch == NULL:
            PyMem_Free(ints)
            PyMem_Free(scratch)
            raise MemoryError()
        try:
            return self._encode(<const uint8_t*>text, size, <tuple>seq, bool(pending), ints,
                                scratch)
        finally:
            PyMem_Free(ints)
            PyMem_Free(scratch)

    cdef Py_ssize_t _field(self, const uint8_t* key, Py_ssize_t length):
        cdef int i
        cdef bytes name
        for i in range(self.nfields):
            name = <bytes>self.names[i]
            if PyBytes_GET_SIZE(name) == length and memcmp(
                    PyBytes_AS_STRING(name), key, length) == 0:
                return i
        return -1

    cdef object _encode(self, const uint8_t* p, Py_ssize_t end, tuple seq, bint pending,
                        Py_ssize_t* ints, uint8_t* scratch):
        cdef int n = self.nfields
        cdef int v = self.var_count
        cdef int fix_len = self.fix_len
        cdef Py_ssize_t* kind = ints
        cdef Py_ssize_t* start = ints + max(n, 1)
        cdef Py_ssize_t* stop = ints + 2 * max(n, 1)
        cdef Py_ssize_t* part = ints + 3 * max(n, 1)       # P_* by variable-size number
        cdef Py_ssize_t* part_at = part + max(v, 1)        # where its bytes are
        cdef Py_ssize_t* part_len = part + 2 * max(v, 1)   # and how many
        cdef uint8_t* fixed = scratch
        cdef uint8_t* extra = scratch + fix_len            # 24 bytes per variable-size field
        cdef Py_ssize_t i = 0, k, a, seen = 0
        cdef int f, code, w
        cdef uint8_t c
        cdef bint digits
        cdef list objects = [None] * v
        for f in range(n):
            kind[f] = 0
        # -- the object: {"name": value, ...}, keys in any order, each field once ------
        while i < end and _space(p[i]):
            i += 1
        if i >= end or p[i] != 123:  # {
            raise Fallback
        i += 1
        while i < end and _space(p[i]):
            i += 1
        if i < end and p[i] == 125 and n == 0:  # {} of a schema without fields
            i += 1
        else:
            while True:
                if i >= end or p[i] != 34:  # "
                    raise Fallback
                a = i + 1
                i = a
                while i < end and p[i] != 34:
                    if p[i] == 92 or p[i] < 32:  # an escape or a control character
                        raise Fallback
                    i += 1
                if i >= end:
                    raise Fallback
                f = self._field(p + a, i - a)
                if f < 0 or kind[f]:
                    raise Fallback  # "@order", a key the schema lacks, a repeated key
                i += 1
                while i < end and _space(p[i]):
                    i += 1
                if i >= end or p[i] != 58:  # :
                    raise Fallback
                i += 1
                while i < end and _space(p[i]):
                    i += 1
                if i >= end:
                    raise Fallback
                c = p[i]
                if c == 34:  # a string without escapes
                    a = i + 1
                    i = a
                    while i < end and p[i] != 34:
                        if p[i] == 92 or p[i] < 32:
                            raise Fallback
                        i += 1
                    if i >= end:
                        raise Fallback
                    kind[f], start[f], stop[f] = T_STRING, a, i
                    i += 1
                elif c == 45 or 48 <= c <= 57:  # a number, read as json.loads reads one
                    a = i
                    if c == 45:
                        i += 1
                    if i < end and p[i] == 48:
                        i += 1
                    elif i < end and 49 <= p[i] <= 57:
                        while i < end and 48 <= p[i] <= 57:
                            i += 1
                    else:
                        raise Fallback
                    kind[f] = T_INT
                    if i + 1 < end and p[i] == 46 and 48 <= p[i + 1] <= 57:  # .digits
                        i += 1
                        while i < end and 48 <= p[i] <= 57:
                            i += 1
                        kind[f] = T_FLOAT
                    if i < end and (p[i] == 101 or p[i] == 69):  # e/E [+-] digits
                        k = i + 1
                        if k < end and (p[k] == 43 or p[k] == 45):
                            k += 1
                        digits = False
                        while k < end and 48 <= p[k] <= 57:
                            k += 1
                            digits = True
                        if digits:
                            i = k
                            kind[f] = T_FLOAT
                    start[f], stop[f] = a, i
                elif end - i >= 4 and memcmp(p + i, b"true", 4) == 0:
                    kind[f] = T_TRUE
                    i += 4
                elif end - i >= 5 and memcmp(p + i, b"false", 5) == 0:
                    kind[f] = T_FALSE
                    i += 5
                elif end - i >= 4 and memcmp(p + i, b"null", 4) == 0:
                    kind[f] = T_NULL
                    i += 4
                else:
                    raise Fallback  # an object, an array, a NaN literal, not JSON
                seen += 1
                while i < end and _space(p[i]):
                    i += 1
                if i < end and p[i] == 44:  # ,
                    i += 1
                    while i < end and _space(p[i]):
                        i += 1
                    continue
                if i < end and p[i] == 125:  # }
                    i += 1
                    break
                raise Fallback
        while i < end and _space(p[i]):
            i += 1
        if i != end or seen != n:
            raise Fallback  # text after the object, or a field missing
        # -- each field's bytes, as the generated encoder makes them ---------------------
        memset(fixed, 0, fix_len)
        cdef int64_t iv
        cdef uint64_t bits64
        cdef double d
        cdef object value, made
        for f in range(n):
            code = self.codes[f]
            w = self.where[f]
            if code == F_BOOLEAN:
                if kind[f] == T_TRUE:
                    fixed[w] |= <uint8_t>(1 << self.bit[f])
                elif kind[f] != T_FALSE:
                    raise Fallback
                continue
            if code < V_BOOL:
                if code == F_FLOAT64:
                    d = self._double(p, f, kind, start, stop)
                    memcpy(&bits64, &d, 8)
                    _put_be(fixed + w, bits64, 8)
                elif code == F_FLOAT32:
                    made = _structs["float32"].pack(
                        _float_value(self._value(p, f, kind, start, stop), True))
                    memcpy(fixed + w, PyBytes_AS_STRING(made), 4)
                else:
                    iv = self._int(p, f, kind, start, stop, code)
                    _put_be(fixed + w, <uint64_t>iv, 8 if code == F_INT64 else
                            4 if code == F_INT32 else 2 if code == F_INT16 else 1)
                continue
            k = self.number[f]
            if kind[f] == T_NULL:
                part[k] = P_NULL
                continue
            a = 24 * k  # this field's scratch bytes
            if code == V_STRING:
                if kind[f] != T_STRING:
                    raise Fallback
                part[k], part_at[k], part_len[k] = P_STRING, start[f], stop[f] - start[f]
            elif code == V_DECIMAL:
                if kind[f] != T_STRING:
                    raise Fallback
                w = _plain_decimal(p + start[f], stop[f] - start[f], extra + a)
                if w:
                    part[k], part_at[k], part_len[k] = P_SCRATCH, a, w
                else:
                    made = _decimal_bytes(*_decimal_parts(self._value(p, f, kind, start, stop)))
                    objects[k] = made
                    part[k], part_len[k] = P_OBJECT, PyBytes_GET_SIZE(made)
            elif code == V_BOOL:
                if kind[f] == T_TRUE:
                    extra[a] = 1
                elif kind[f] == T_FALSE:
                    extra[a] = 0
                else:
                    raise Fallback
                part[k], part_at[k], part_len[k] = P_SCRATCH, a, 1
            elif code == V_FLOAT64:
                d = self._double(p, f, kind, start, stop)
                memcpy(&bits64, &d, 8)
                _put_be(extra + a, bits64, 8)
                part[k], part_at[k], part_len[k] = P_SCRATCH, a, 8
            elif code == V_FLOAT32:
                made = _structs["float32"].pack(
                    _float_value(self._value(p, f, kind, start, stop), True))
                objects[k] = made
                part[k], part_len[k] = P_OBJECT, 4
            elif code == V_DATE:
                if kind[f] != T_STRING:
                    raise Fallback
                if _plain_date(p + start[f], stop[f] - start[f], extra + a):
                    part[k], part_at[k], part_len[k] = P_SCRATCH, a, 6
                else:
                    made = _structs["date"].pack(
                        *_date_value(self._value(p, f, kind, start, stop)))
                    objects[k] = made
                    part[k], part_len[k] = P_OBJECT, PyBytes_GET_SIZE(made)
            elif code == V_TIME or code == V_TIMESTAMP or code == V_TIMESTAMP_TZ:
                if kind[f] != T_STRING:
                    raise Fallback
                value = self._value(p, f, kind, start, stop)
                if code == V_TIME:
                    made = _structs["time"].pack(*_time_value(value))
                elif code == V_TIMESTAMP:
                    made = _structs["timestamp"].pack(*_timestamp_value(value))
                else:
                    made = _structs["timestamp_tz"].pack(*_timestamp_tz_value(value))
                objects[k] = made
                part[k], part_len[k] = P_OBJECT, PyBytes_GET_SIZE(made)
            else:  # nullable integers
                w = (8 if code == V_INT64 else 4 if code == V_INT32 else
                     2 if code == V_INT16 else 1)
                iv = self._int(p, f, kind, start, stop, F_INT8 + (code - V_INT8))
                _put_be(extra + a, <uint64_t>iv, w)
                part[k], part_at[k], part_len[k] = P_SCRATCH, a, w
        return self._assemble(p, seq, pending, part, part_at, part_len, fixed, extra, objects)

    cdef object _assemble(self, const uint8_t* p, tuple seq, bint pending, Py_ssize_t* part,
                          Py_ssize_t* part_at, Py_ssize_t* part_len, uint8_t* fixed,
                          uint8_t* extra, list objects):
        cdef int v = self.var_count
        cdef int fix_len = self.fix_len
        cdef Py_ssize_t prefix_len = PyBytes_GET_SIZE(self.prefix)
        cdef Py_ssize_t total, dl, at, width, table
        cdef Py_ssize_t present = 0
        cdef int i, k, t
        cdef object out
        cdef uint8_t* o
        if not v:
            out = PyBytes_FromStringAndSize(NULL, prefix_len + fix_len)
            o = <uint8_t*>PyBytes_AS_STRING(out)
            memcpy(o, PyBytes_AS_STRING(self.prefix), prefix_len)
            memcpy(o + prefix_len, fixed, fix_len)
            return out
        dl = fix_len
        for k in range(v):
            if part[k] != P_NULL:
                present += 1
                dl += part_len[k] + (4 if part[k] == P_STRING else 0)
        if pending and present > 1:
            raise _WriteOrderNeeded(self.schema_id, None)
        width = 1 if dl < 255 else 2 if dl < 65535 else 4
        total = prefix_len + 4 + dl + v * width
        out = PyBytes_FromStringAndSize(NULL, total)
        o = <uint8_t*>PyBytes_AS_STRING(out)
        memcpy(o, PyBytes_AS_STRING(self.prefix), prefix_len)
        _put_be(o + prefix_len, <uint64_t><uint32_t>dl, 4)
        cdef Py_ssize_t ds = prefix_len + 4
        memcpy(o + ds, fixed, fix_len)
        table = ds + dl
        # Null entries: all ones in the entry's width.
        memset(o + table, 0xFF, v * width)
        at = fix_len
        for i in range(len(seq)):
            k = seq[i]
            if part[k] == P_NULL:
                continue
            t = self.table_index[k]
            _put_be(o + table + t * width, <uint64_t>at, width)
            if part[k] == P_STRING:
                _put_be(o + ds + at, <uint64_t><uint32_t>part_len[k], 4)
                memcpy(o + ds + at + 4, p + part_at[k], part_len[k])
                at += 4 + part_len[k]
            elif part[k] == P_SCRATCH:
                memcpy(o + ds + at, extra + part_at[k], part_len[k])
                at += part_len[k]
            else:
                memcpy(o + ds + at, PyBytes_AS_STRING(objects[k]), part_len[k])
                at += part_len[k]
        if at != dl:
            raise AssertionError("FlatEncoder: parts do not fill the data")
        return out

    cdef object _value(self, const uint8_t* p, int f, Py_ssize_t* kind, Py_ssize_t* start,
                       Py_ssize_t* stop):
        """The field's value as json.loads gives it (strings here have no escapes)."""
        cdef Py_ssize_t t = kind[f]
        if t == T_STRING:
            return PyUnicode_DecodeUTF8(<char*>(p + start[f]), stop[f] - start[f], NULL)
        if t == T_INT:
            return int((<char*>(p + start[f]))[:stop[f] - start[f]])
        if t == T_FLOAT:
            return float((<char*>(p + start[f]))[:stop[f] - start[f]])
        if t == T_TRUE:
            return True
        if t == T_FALSE:
            return False
        return None

    cdef double _double(self, const uint8_t* p, int f, Py_ssize_t* kind, Py_ssize_t* start,
                        Py_ssize_t* stop) except? -1.0:
        """A float64 field as the generated encoder reads it (``_float_value``)."""
        cdef double d
        if kind[f] == T_FLOAT:
            d = float((<char*>(p + start[f]))[:stop[f] - start[f]])
            if d - d == 0.0:
                return d
        return _float_value(self._value(p, f, kind, start, stop), False)

    cdef int64_t _int(self, const uint8_t* p, int f, Py_ssize_t* kind, Py_ssize_t* start,
                      Py_ssize_t* stop, int code) except? -1:
        """An integer field: a JSON integer within the field's range, else Fallback."""
        cdef Py_ssize_t i = start[f], end = stop[f]
        cdef bint negative = False
        cdef uint64_t magnitude = 0, limit
        cdef int width
        if kind[f] != T_INT:
            raise Fallback  # a float, a string, a boolean, null: not an int
        if p[i] == 45:
            negative = True
            i += 1
        if end - i > 19:
            raise Fallback
        while i < end:
            if magnitude > (0xFFFFFFFFFFFFFFFF - 9) // 10:
                raise Fallback
            magnitude = magnitude * 10 + (p[i] - 48)
            i += 1
        width = 64 if code == F_INT64 else 32 if code == F_INT32 else 16 if code == F_INT16 else 8
        limit = (<uint64_t>1) << (width - 1)
        if negative:
            if magnitude > limit:
                raise Fallback
            return <int64_t>(<uint64_t>0 - magnitude)
        if magnitude >= limit:
            raise Fallback
        return <int64_t>magnitude


cdef int _plain_decimal(const uint8_t* p, Py_ssize_t n, uint8_t* out) noexcept:
    """A decimal's text ``-?digits(.digits)?`` of at most 18 digits as its Compact bytes
    (length, minimal two's complement, scale) in ``out``; their size, or 0 to leave it to
    the helpers (other forms, more digits)."""
    cdef Py_ssize_t i = 0
    cdef bint negative = False
    cdef int digits = 0, scale = 0, bits = 0, size
    cdef int64_t u = 0
    cdef uint64_t x
    if n and p[0] == 45:
        negative = True
        i = 1
    if i >= n or not 48 <= p[i] <= 57:
        return 0
    while i < n and 48 <= p[i] <= 57:
        u = u * 10 + (p[i] - 48)
        digits += 1
        i += 1
        if digits > 18:
            return 0
    if i < n:
        if p[i] != 46 or i + 1 >= n:
            return 0
        i += 1
        while i < n and 48 <= p[i] <= 57:
            u = u * 10 + (p[i] - 48)
            digits += 1
            scale += 1
            i += 1
            if digits > 18:
                return 0
        if i != n:
            return 0
    if negative:
        u = -u
    x = <uint64_t>(-(u + 1)) if u < 0 else <uint64_t>u
    while x:
        bits += 1
        x >>= 1
    size = (8 + bits) // 8
    _put_be(out, <uint64_t><uint32_t>size, 4)
    _put_be(out + 4, <uint64_t>u, size)
    _put_be(out + 4 + size, <uint64_t><uint32_t>scale, 4)
    return 8 + size


cdef bint _plain_date(const uint8_t* p, Py_ssize_t n, uint8_t* out) noexcept:
    """``YYYY-MM-DD`` of a real date with a year 1..9999 as its Compact bytes in ``out``."""
    cdef int year, month, day, i
    if n != 10 or p[4] != 45 or p[7] != 45:
        return False
    for i in range(10):
        if i != 4 and i != 7 and not 48 <= p[i] <= 57:
            return False
    year = (p[0] - 48) * 1000 + (p[1] - 48) * 100 + (p[2] - 48) * 10 + (p[3] - 48)
    month = (p[5] - 48) * 10 + (p[6] - 48)
    day = (p[8] - 48) * 10 + (p[9] - 48)
    if year == 0 or month < 1 or month > 12 or day < 1 or day > _days_in_month(year, month):
        return False
    _put_be(out, <uint64_t><uint32_t>year, 4)
    out[4] = <uint8_t>month
    out[5] = <uint8_t>day
    return True
