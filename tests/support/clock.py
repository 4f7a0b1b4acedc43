"""A clock the test moves by hand, for code that takes ``now`` (datetime) or ``clock`` (seconds) arguments."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FakeClock:
    """Calling it gives the current (fake) time; :meth:`advance` moves it forward."""

    def __init__(self, start: datetime = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def seconds(self) -> float:
        """The time as seconds (a ``time.monotonic`` stand-in)."""
        return self.current.timestamp()

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
