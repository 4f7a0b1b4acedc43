"""In-memory Zoho API credit ledger; same semantics as :class:`syncbridge.adapters.db.credits.SqlCreditLedger`."""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from syncbridge.ports import CreditTotal, CreditUse, credit_minute

KEEP = timedelta(days=8)           # minutes older than this are pruned
PRUNE_EVERY = timedelta(hours=1)


class MemoryCreditLedger:
    """Credits and calls per (minute, call, purpose) in a dict; thread-safe."""

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.now = now
        self._lock = threading.Lock()
        self._minutes: dict[tuple[datetime, str, str], list[int]] = {}   # -> [credits, calls, records]
        self._next_prune: datetime | None = None

    def spend(self, use: CreditUse) -> None:
        """Note one call's credits in its minute (``use.at``, else now)."""
        now = self.now()
        key = (credit_minute(use.at or now), use.call, use.purpose)
        with self._lock:
            row = self._minutes.setdefault(key, [0, 0, 0])
            row[0] += use.credits
            row[1] += use.calls
            row[2] += use.records
            if self._next_prune is None or now >= self._next_prune:
                self._next_prune = now + PRUNE_EVERY
                oldest = credit_minute(now - KEEP)
                for old in [k for k in self._minutes if k[0] < oldest]:
                    del self._minutes[old]

    def spend_many(self, uses: Sequence[CreditUse]) -> None:
        """Note several uses, each as :meth:`spend` does."""
        for use in uses:
            self.spend(use)

    def used(self, since: datetime, *, purposes: tuple[str, ...] | None = None) -> int:
        """Credits of the minutes from ``since``'s minute on (by ``purposes`` only, when given)."""
        start = credit_minute(since)
        with self._lock:
            return sum(row[0] for (minute, _call, purpose), row in self._minutes.items()
                       if minute >= start and (purposes is None or purpose in purposes))

    def totals(self, since: datetime) -> list[CreditTotal]:
        """Credits and calls from ``since``'s minute on per call type and purpose, the most credits first."""
        start = credit_minute(since)
        sums: dict[tuple[str, str], list[int]] = {}
        with self._lock:
            for (minute, call, purpose), row in self._minutes.items():
                if minute >= start:
                    total = sums.setdefault((call, purpose), [0, 0])
                    total[0] += row[0]
                    total[1] += row[1]
        found = [CreditTotal(call, purpose, credits, calls) for (call, purpose), (credits, calls) in sums.items()]
        return sorted(found, key=lambda t: (-t.credits, t.call, t.purpose))

    def minutes_kept(self) -> int:
        """How many (minute, call, purpose) rows are kept (pruning leaves the last 8 days)."""
        with self._lock:
            return len(self._minutes)
