"""The Zoho API credits of the last 24 hours against the org's budget, for `syncbridge status` and the dashboard."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from syncbridge.ports import CREDIT_PURPOSES, CreditLedger, CreditTotal

CREDIT_WINDOW = timedelta(hours=24)    # Zoho counts the credits of a rolling 24 h


@dataclass(frozen=True)
class CreditSummary:
    """Credits used in the rolling 24 h up to ``until``, the budget, and the split by purpose and call type."""

    used: int
    budget: int
    since: datetime
    until: datetime
    by_purpose: tuple[tuple[str, int], ...]     # every known purpose (0 too), then any other, in that order
    by_call: tuple[CreditTotal, ...]            # the most credits first

    @property
    def share(self) -> float:
        """Used / budget (above 1 when over the budget)."""
        return self.used / self.budget if self.budget > 0 else 0.0

    @property
    def percent(self) -> float:
        """The share in percent, to one decimal."""
        return round(self.share * 100, 1)

    def as_dict(self) -> dict[str, Any]:
        return {"used": self.used, "budget": self.budget, "share": round(self.share, 4),
                "since": self.since.isoformat(), "until": self.until.isoformat(),
                "by_purpose": dict(self.by_purpose),
                "by_call": [{"call": t.call, "purpose": t.purpose, "credits": t.credits, "calls": t.calls}
                            for t in self.by_call]}


def credit_summary(ledger: CreditLedger, budget: int, now: datetime) -> CreditSummary:
    """Sum the ledger over the 24 h up to ``now`` (to the minute) per purpose and call type."""
    since = now - CREDIT_WINDOW
    totals = ledger.totals(since)
    per_purpose = dict.fromkeys(CREDIT_PURPOSES, 0)
    for total in totals:
        per_purpose[total.purpose] = per_purpose.get(total.purpose, 0) + total.credits
    return CreditSummary(used=sum(t.credits for t in totals), budget=budget, since=since, until=now,
                         by_purpose=tuple(per_purpose.items()), by_call=tuple(totals))
