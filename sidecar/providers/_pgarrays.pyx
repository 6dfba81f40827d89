# cython: language_level=3, boundscheck=False, wraparound=False
"""The optional compiled helper of the PostgreSQL provider: arrays in their binary form.

A Store is one statement whose parameters are arrays, one element per entry and column
(``unnest`` of ``text[]``, ``bytea[]``, ``int8[]``). psycopg dumps a Python list in a
Python loop, element by element; for a call of a thousand entries that is ten thousand
iterations. These functions write the same bytes PostgreSQL's ``array_send`` writes
(https://www.postgresql.org/docs/current/sql-createtype.html, "binary input/output"):
the dimensions, then each element as its length and its bytes (length -1 for NULL). The
provider hands them to psycopg as preformatted binary parameters.

A value psycopg would refuse (a NUL in text, which PostgreSQL text cannot hold, or a
value of another type) makes the function return None: the provider then passes the
list itself, and psycopg's own dumper explains. The differential tests
(``tests/integration/test_postgres_arrays.py``) compare the rows either way.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memchr, memcpy

cdef enum:
    TEXT_OID = 25
    BYTEA_OID = 17
    INT8_OID = 20


cdef inline void _put32(uint8_t* out, uint32_t value) noexcept nogil:
    out[0] = <uint8_t>(value >> 24)
    out[1] = <uint8_t>(value >> 16)
    out[2] = <uint8_t>(value >> 8)
    out[3] = <uint8_t>value


cdef inline void _put64(uint8_t* out, uint64_t value) noexcept nogil:
    cdef int i
    for i in range(7, -1, -1):
        out[i] = <uint8_t>(value & 0xFF)
        value >>= 8


cdef object _array(list values, uint32_t oid, int kind):
    """The binary array of ``values``; kind 0 text, 1 bytea, 2 int8."""
    cdef Py_ssize_t n = len(values)
    cdef Py_ssize_t i, size, total
    cdef bint nulls = False
    cdef const char** data = NULL
    cdef Py_ssize_t* lengths = NULL
    cdef int64_t* numbers = NULL
    cdef object value
    cdef object out
    cdef uint8_t* o
    if n == 0:  # no dimensions
        out = PyBytes_FromStringAndSize(NULL, 12)
        o = <uint8_t*>PyBytes_AS_STRING(out)
        _put32(o, 0)
        _put32(o + 4, 0)
        _put32(o + 8, oid)
        return out
    data = <const char**>PyMem_Malloc(n * sizeof(char*))
    lengths = <Py_ssize_t*>PyMem_Malloc(n * sizeof(Py_ssize_t))
    numbers = <int64_t*>PyMem_Malloc(n * sizeof(int64_t))
    if data == NULL or lengths == NULL or numbers == NULL:
        PyMem_Free(data)
        PyMem_Free(lengths)
        PyMem_Free(numbers)
        raise MemoryError()
    try:
        total = 20  # ndim, flags, oid, one dimension's size and lower bound
        for i in range(n):
            value = values[i]
            if value is None:
                nulls = True
                lengths[i] = -1
                total += 4
                continue
            if kind == 0:
                if type(value) is not str:
                    return None
                data[i] = PyUnicode_AsUTF8AndSize(value, &size)
                if memchr(data[i], 0, size) != NULL:
                    return None  # PostgreSQL text cannot hold NUL: psycopg explains
            elif kind == 1:
                if type(value) is not bytes:
                    return None
                data[i] = PyBytes_AS_STRING(value)
                size = PyBytes_GET_SIZE(value)
            else:
                if type(value) is not int:
                    return None
                try:
                    numbers[i] = value
                except OverflowError:
                    return None  # past int8: psycopg's dumper and the server explain
                size = 8
            if size > 0x7FFFFFFF:
                return None
            lengths[i] = size
            total += 4 + size
        out = PyBytes_FromStringAndSize(NULL, total)
        o = <uint8_t*>PyBytes_AS_STRING(out)
        _put32(o, 1)
        _put32(o + 4, 1 if nulls else 0)
        _put32(o + 8, oid)
        _put32(o + 12, <uint32_t>n)
        _put32(o + 16, 1)
        o += 20
        for i in range(n):
            if lengths[i] < 0:
                _put32(o, 0xFFFFFFFF)
                o += 4
                continue
            _put32(o, <uint32_t>lengths[i])
            o += 4
            if kind == 2:
                _put64(o, <uint64_t>numbers[i])
            else:
                memcpy(o, data[i], lengths[i])
            o += lengths[i]
        return out
    finally:
        PyMem_Free(data)
        PyMem_Free(lengths)
        PyMem_Free(numbers)


def text_array(list values):
    """``text[]`` of str or None values, or None for a value psycopg should explain."""
    return _array(values, TEXT_OID, 0)


def bytea_array(list values):
    """``bytea[]`` of bytes or None values, or None for any other value."""
    return _array(values, BYTEA_OID, 1)


def int8_array(list values):
    """``int8[]`` of int or None values, or None for other values and ints past int8."""
    return _array(values, INT8_OID, 2)
