"""A tiny in-memory credit ledger for the tests of the bulk throttle (the port's behaviour, nothing more)."""
from __future__ import annotations

from datetime import datetime

from syncbridge.ports import CreditTotal, CreditUse


class ListLedger:
    """:class:`syncbridge.ports.CreditLedger` as a list of uses; ``now`` stamps a use without a time."""

    def __init__(self, now) -> None:
        self.now = now
        self.uses: list[CreditUse] = []

    def spend(self, use: CreditUse) -> None:
        self.uses.append(use if use.at is not None else CreditUse(use.call, use.credits, use.purpose, use.records,
                                                                  self.now()))

    def spend_many(self, uses) -> None:
        for use in uses:
            self.spend(use)

    def used(self, since: datetime, *, purposes: tuple[str, ...] | None = None) -> int:
        return sum(u.credits for u in self.uses
                   if u.at is not None and u.at >= since and (purposes is None or u.purpose in purposes))

    def totals(self, since: datetime) -> list[CreditTotal]:
        found: dict[tuple[str, str], list[int]] = {}
        for u in self.uses:
            if u.at is not None and u.at >= since:
                entry = found.setdefault((u.call, u.purpose), [0, 0])
                entry[0] += u.credits
                entry[1] += 1
        return sorted((CreditTotal(call, purpose, c, n) for (call, purpose), (c, n) in found.items()),
                      key=lambda t: -t.credits)
