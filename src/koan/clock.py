"""The time source. Everything that compares against "now" asks a Clock, so tests can move it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """Wall-clock time in UTC, with an offset that tests may move forward."""

    def __init__(self) -> None:
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        """Move this clock forward (tests only need this; production never calls it)."""
        self._offset += delta
