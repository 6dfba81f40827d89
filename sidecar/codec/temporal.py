"""Java date/time values, kept exactly as a Hazelcast member writes them.

Python's ``datetime`` cannot hold what Java's ``java.time`` types carry: nanoseconds
(``LocalTime.getNano()``), years outside 1..9999 (``LocalDate`` spans
-999,999,999..999,999,999) and offsets with seconds (``ZoneOffset`` spans
-18:00..+18:00 at one-second precision). hazelcast-python-client 5.7.0's
``IOUtil.read_time`` divides the nanoseconds by 1000 and builds a ``datetime``,
so a value read through it cannot be written back to the same bytes. These small
value types hold the exact fields and know their ISO-8601 text, which is what the
JSON documents store.

Byte layout (Java ``IOUtil.writeLocalDate/Time/DateTime/OffsetDateTime``, used by
the Compact writer): date = year int32, month int8, day int8; time = hour int8,
minute int8, second int8, nano int32; timestamp = date + time;
timestamp with time zone = timestamp + offset seconds int32. All big-endian.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sidecar.errors import DecodeError

#: java.time.Year.MIN_VALUE / MAX_VALUE.
MIN_YEAR = -999_999_999
MAX_YEAR = 999_999_999
#: java.time.ZoneOffset.MAX_SECONDS (18 hours).
MAX_OFFSET_SECONDS = 18 * 3600

_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_DATE_RE = re.compile(r"([+-]?)(\d{4,9})-(\d{2})-(\d{2})")
_TIME_RE = re.compile(r"(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?")
_OFFSET_RE = re.compile(r"(Z)|([+-])(\d{2}):(\d{2})(?::(\d{2}))?")


def _is_leap(year: int) -> bool:
    # Proleptic Gregorian calendar, as java.time.chrono.IsoChronology.isLeapYear.
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


@dataclass(frozen=True, slots=True)
class LocalDate:
    """A ``java.time.LocalDate``: any ISO year Java allows, not only 1..9999."""

    year: int
    month: int
    day: int

    def __post_init__(self) -> None:
        if not MIN_YEAR <= self.year <= MAX_YEAR:
            raise DecodeError(f"date year {self.year} is outside Java's range")
        if not 1 <= self.month <= 12:
            raise DecodeError(f"date month {self.month} is not 1..12")
        days = _DAYS_IN_MONTH[self.month - 1] + (
            1 if self.month == 2 and _is_leap(self.year) else 0
        )
        if not 1 <= self.day <= days:
            raise DecodeError(
                f"date day {self.day} is not valid for {self.year:04d}-{self.month:02d}"
            )

    def isoformat(self) -> str:
        """As ``LocalDate.toString()``: ``2024-01-31``, ``+12345-01-01``, ``-0001-01-01``."""
        if 0 <= self.year <= 9999:
            year = f"{self.year:04d}"
        elif self.year > 9999:
            year = f"+{self.year}"
        else:
            year = f"-{-self.year:04d}"
        return f"{year}-{self.month:02d}-{self.day:02d}"

    @classmethod
    def parse(cls, text: str) -> LocalDate:
        match = _DATE_RE.fullmatch(text)
        if match is None:
            raise DecodeError(f"{text!r} is not an ISO date (YYYY-MM-DD)")
        sign, year, month, day = match.groups()
        return cls(-int(year) if sign == "-" else int(year), int(month), int(day))

    @classmethod
    def from_date(cls, value: dt.date) -> LocalDate:
        return cls(value.year, value.month, value.day)

    def to_date(self) -> dt.date:
        """The Python date; raises DecodeError for years outside 1..9999."""
        if not dt.MINYEAR <= self.year <= dt.MAXYEAR:
            raise DecodeError(f"date {self.isoformat()} has no Python date equivalent")
        return dt.date(self.year, self.month, self.day)


@dataclass(frozen=True, slots=True)
class LocalTime:
    """A ``java.time.LocalTime`` with nanosecond precision."""

    hour: int
    minute: int
    second: int
    nano: int = 0

    def __post_init__(self) -> None:
        if not (
            0 <= self.hour <= 23
            and 0 <= self.minute <= 59
            and 0 <= self.second <= 59
            and 0 <= self.nano <= 999_999_999
        ):
            raise DecodeError(
                f"time {self.hour}:{self.minute}:{self.second}.{self.nano} is out of range"
            )

    def isoformat(self) -> str:
        """``13:45:07.123456789``: seconds always present, fraction trimmed but exact."""
        text = f"{self.hour:02d}:{self.minute:02d}:{self.second:02d}"
        if self.nano:
            text += "." + f"{self.nano:09d}".rstrip("0")
        return text

    @classmethod
    def parse(cls, text: str) -> LocalTime:
        match = _TIME_RE.fullmatch(text)
        if match is None:
            raise DecodeError(f"{text!r} is not an ISO time (HH:MM:SS[.fraction])")
        hour, minute, second, fraction = match.groups()
        nano = int(fraction.ljust(9, "0")) if fraction else 0
        return cls(int(hour), int(minute), int(second), nano)

    @classmethod
    def from_time(cls, value: dt.time) -> LocalTime:
        return cls(value.hour, value.minute, value.second, value.microsecond * 1000)

    def to_time(self) -> dt.time:
        """The Python time, truncated to microseconds."""
        return dt.time(self.hour, self.minute, self.second, self.nano // 1000)


@dataclass(frozen=True, slots=True)
class LocalDateTime:
    """A ``java.time.LocalDateTime``."""

    date: LocalDate
    time: LocalTime

    def isoformat(self) -> str:
        return f"{self.date.isoformat()}T{self.time.isoformat()}"

    @classmethod
    def parse(cls, text: str) -> LocalDateTime:
        date, sep, time = text.partition("T")
        if not sep:
            raise DecodeError(f"{text!r} is not an ISO timestamp (date 'T' time)")
        return cls(LocalDate.parse(date), LocalTime.parse(time))

    @classmethod
    def from_datetime(cls, value: dt.datetime) -> LocalDateTime:
        return cls(LocalDate.from_date(value.date()), LocalTime.from_time(value.time()))

    def to_datetime(self) -> dt.datetime:
        """The naive Python datetime, truncated to microseconds."""
        return dt.datetime.combine(self.date.to_date(), self.time.to_time())


@dataclass(frozen=True, slots=True)
class OffsetDateTime:
    """A ``java.time.OffsetDateTime``: a local date-time and its offset in seconds."""

    datetime: LocalDateTime
    offset_seconds: int

    def __post_init__(self) -> None:
        if not -MAX_OFFSET_SECONDS <= self.offset_seconds <= MAX_OFFSET_SECONDS:
            raise DecodeError(f"time zone offset {self.offset_seconds}s exceeds 18 hours")

    def isoformat(self) -> str:
        """``2024-01-31T13:45:07+05:30`` (``+HH:MM:SS`` when the offset has seconds)."""
        sign = "-" if self.offset_seconds < 0 else "+"
        hours, rest = divmod(abs(self.offset_seconds), 3600)
        minutes, seconds = divmod(rest, 60)
        offset = f"{sign}{hours:02d}:{minutes:02d}"
        if seconds:
            offset += f":{seconds:02d}"
        return self.datetime.isoformat() + offset

    @classmethod
    def parse(cls, text: str) -> OffsetDateTime:
        # The offset starts at the last 'Z', '+' or '-' after the time part.
        time_start = text.find("T")
        cut = max(text.rfind("+"), text.rfind("-"), text.rfind("Z"))
        if time_start < 0 or cut < time_start:
            raise DecodeError(f"{text!r} is not an ISO timestamp with an offset")
        match = _OFFSET_RE.fullmatch(text[cut:])
        if match is None:
            raise DecodeError(f"{text[cut:]!r} is not a time zone offset (+HH:MM[:SS] or Z)")
        zulu, sign, hours, minutes, seconds = match.groups()
        offset = 0
        if not zulu:
            if int(minutes) > 59 or (seconds is not None and int(seconds) > 59):
                raise DecodeError(f"{text[cut:]!r} is not a time zone offset")
            offset = int(hours) * 3600 + int(minutes) * 60 + int(seconds or 0)
            if sign == "-":
                offset = -offset
        return cls(LocalDateTime.parse(text[:cut]), offset)

    @classmethod
    def from_datetime(cls, value: dt.datetime) -> OffsetDateTime:
        offset = value.utcoffset()
        if offset is None:
            raise DecodeError(f"{value!r} has no time zone offset")
        return cls(
            LocalDateTime.from_datetime(value.replace(tzinfo=None)), int(offset.total_seconds())
        )

    def to_datetime(self) -> dt.datetime:
        """The aware Python datetime, truncated to microseconds."""
        tz = dt.timezone(dt.timedelta(seconds=self.offset_seconds))
        return self.datetime.to_datetime().replace(tzinfo=tz)
