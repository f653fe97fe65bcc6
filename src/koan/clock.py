"""The time source. Everything that compares against "now" asks a Clock, so tests can move it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def utc_iso(value: datetime) -> str:
    """`value` in UTC as ISO 8601 with a `Z`, as exports and reports write times."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def lasting(seconds: int) -> str:
    """How long a link lasts, in words ("24 hours", "1 hour 30 minutes", "45 seconds"): the
    whole hours and minutes of `seconds`, never more than it lasts."""
    hours, rest = divmod(max(seconds, 0), 3600)
    minutes, rest = divmod(rest, 60)
    parts = [
        f"{n} {unit}{'' if n == 1 else 's'}"
        for n, unit in ((hours, "hour"), (minutes, "minute"))
        if n
    ]
    return " ".join(parts) or f"{rest} second{'' if rest == 1 else 's'}"


@lru_cache(maxsize=512)
def zone(name: str) -> tzinfo:
    """The time zone called `name`; UTC if the name is unknown (never fail a learner's request)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


class Clock:
    """Wall-clock time in UTC, with an offset that tests may move forward."""

    def __init__(self) -> None:
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        """Move this clock forward (tests only need this; production never calls it)."""
        self._offset += delta
