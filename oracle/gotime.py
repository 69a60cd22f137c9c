"""Go's time.Time and time.Duration as encoding/json writes and reads them (for masa's NodeData).

A time.Time in JSON is an RFC 3339 string: up to 9 fractional digits with trailing zeros dropped,
`Z` for a zero offset, else `+hh:mm`/`-hh:mm` (the writer's local offset). The zero time is
`"0001-01-01T00:00:00Z"` and is always written (omitempty has no effect on a struct). Reading
follows Go 1.20+'s strict RFC 3339 parser: 4-digit year, two-digit fields in range, `T` and `Z`
upper case, fraction after a `.`, extra fractional digits beyond 9 truncated; `null` is a no-op.
A time.Duration is a plain JSON integer of nanoseconds.

`GoTime` keeps the civil fields as written plus the offset, so a received time re-encodes byte for
byte (as Go's does: it keeps the fixed zone it parsed).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

__all__ = ["GoTime", "GoTimeError", "ZERO_TIME"]


class GoTimeError(ValueError):
    """Text that Go's time.Time.UnmarshalJSON refuses."""


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})\Z", re.ASCII
)
_EPOCH_ORDINAL = datetime(1970, 1, 1).toordinal()


@dataclass(frozen=True, order=False)
class GoTime:
    """A wall-clock time with nanoseconds and a UTC offset in seconds (Go's time.Time, no monotonic)."""

    year: int = 1
    month: int = 1
    day: int = 1
    hour: int = 0
    minute: int = 0
    second: int = 0
    nanosecond: int = 0
    offset: int = 0  # seconds east of UTC

    @classmethod
    def parse(cls, text: str) -> GoTime:
        """Parse RFC 3339 as Go's strict parser does; raises GoTimeError."""
        m = _RFC3339.match(text)
        if m is None:
            raise GoTimeError(f'parsing time "{text}" as RFC 3339: cannot parse')
        year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
        if not 1 <= month <= 12:
            raise GoTimeError(f'parsing time "{text}": month out of range')
        if not 1 <= day <= calendar.monthrange(year or 2000, month)[1]:  # year 0 is a leap year
            raise GoTimeError(f'parsing time "{text}": day out of range')
        if hour > 23 or minute > 59 or second > 59:
            raise GoTimeError(f'parsing time "{text}": time out of range')
        frac = m.group(7) or ""
        nanosecond = int((frac[:9]).ljust(9, "0")) if frac else 0
        zone = m.group(8)
        offset = 0
        if zone != "Z":
            zh, zm = int(zone[1:3]), int(zone[4:6])
            if zh > 23 or zm > 59:
                raise GoTimeError(f'parsing time "{text}": time zone offset out of range')
            offset = (zh * 3600 + zm * 60) * (-1 if zone[0] == "-" else 1)
        return cls(year, month, day, hour, minute, second, nanosecond, offset)

    @classmethod
    def from_unix_ns(cls, ns: int, offset: int = 0) -> GoTime:
        """The instant `ns` nanoseconds after the Unix epoch, written with `offset`."""
        seconds, nanosecond = divmod(ns, 1_000_000_000)
        wall = datetime(1970, 1, 1) + timedelta(seconds=seconds + offset)
        return cls(wall.year, wall.month, wall.day, wall.hour, wall.minute, wall.second, nanosecond, offset)

    @property
    def is_zero(self) -> bool:
        """Go's IsZero: the instant January 1, year 1, 00:00:00 UTC."""
        return self.unix_ns() == ZERO_UNIX_NS

    def unix_ns(self) -> int:
        """Nanoseconds since the Unix epoch (negative before 1970), for ordering instants."""
        # Year 0 (which Go accepts) is outside datetime's range: shift by 400 years (146097 days).
        days = datetime(self.year + 400, self.month, self.day).toordinal() - 146097 - _EPOCH_ORDINAL
        seconds = days * 86400 + self.hour * 3600 + self.minute * 60 + self.second - self.offset
        return seconds * 1_000_000_000 + self.nanosecond

    def __str__(self) -> str:
        """time.Format(RFC3339Nano), as MarshalJSON writes it (without the quotes)."""
        text = f"{self.year:04d}-{self.month:02d}-{self.day:02d}T{self.hour:02d}:{self.minute:02d}:{self.second:02d}"
        if self.nanosecond:
            text += "." + f"{self.nanosecond:09d}".rstrip("0")
        if self.offset == 0:
            return text + "Z"
        sign = "-" if self.offset < 0 else "+"
        minutes = abs(self.offset) // 60
        return text + f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"

    def to_datetime(self) -> datetime:
        """A timezone-aware datetime (microsecond precision) for display."""
        tz = timezone(timedelta(seconds=self.offset))
        return datetime(self.year, self.month, self.day, self.hour, self.minute, self.second,
                        self.nanosecond // 1000, tzinfo=tz)


ZERO_TIME = GoTime()
ZERO_UNIX_NS = (datetime(1, 1, 1).toordinal() - _EPOCH_ORDINAL) * 86400 * 1_000_000_000
