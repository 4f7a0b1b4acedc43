"""The Overview's "API credits (24 h)" card, the credit summary behind it, and the Prometheus counter."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from simulators.fakes.credits import MemoryCreditLedger
from syncbridge.adapters.db.credits import SqlCreditLedger
from syncbridge.bootstrap import credit_ledger, metrics_exposition
from syncbridge.handlers.credits import credit_summary
from syncbridge.handlers.overview import OverviewSources, overview
from syncbridge.ports import BACKFILL_PURPOSE, CHECK_PURPOSE, CreditTotal, CreditUse
from tests.support.dashboard import Dashboard


@pytest.fixture
def board(database_url, store) -> Dashboard:
    return Dashboard.build(database_url, store=store, zoho_daily_credits="1000")


def spend(board, store, *uses: CreditUse) -> None:
    ledger = SqlCreditLedger(store.engine, now=board.clock)
    for use in uses:
        ledger.spend(use)


def card(page: str) -> str:
    found = re.search(r'<section[^>]*aria-labelledby="credits[^"]*"[^>]*>.*?</section>', page, re.S)
    assert found, "no credits card"
    return found.group(0)


def test_the_overview_shows_the_credits_of_the_last_24_hours_against_the_budget_per_purpose(board, store):
    now = board.clock()
    spend(board, store,
          CreditUse("upsert", 700, records=7000, at=now - timedelta(hours=1)),
          CreditUse("search", 150, purpose=BACKFILL_PURPOSE, at=now - timedelta(hours=23, minutes=59)),
          CreditUse("field_metadata", 60, purpose=CHECK_PURPOSE, at=now - timedelta(minutes=5)),
          CreditUse("upsert", 500, records=5000, at=now - timedelta(hours=25)))      # older than 24 h

    html = card(board.signed_in("viewer").get("/").get_data(as_text=True))

    assert "API credits (24 h)" in html
    assert '910 <span class="muted credits-budget">/ 1,000</span>' in html
    assert re.search(r'<meter[^>]*max="1000"[^>]*value="910"', html)
    assert "91.0% of the daily budget of 1,000 credits used" in html and "nearly used up" in html
    rows = re.findall(r'<tr><td>([^<]+)</td><td class="num">([^<]+)</td></tr>', html)
    assert rows == [("Sync", "700"), ("Backfill", "150"), ("Sweep", "0"), ("Linking", "0"), ("Checks", "60")]


def test_the_card_speaks_german_and_says_when_the_budget_is_used_up(board, store):
    spend(board, store, CreditUse("upsert", 1200, records=12000, at=board.clock() - timedelta(minutes=1)))

    html = card(board.signed_in("viewer", language="de").get("/").get_data(as_text=True))

    assert "API-Credits (24 h)" in html and "Budget aufgebraucht" in html
    assert "120,0\u00a0% des Tagesbudgets von 1.000 Credits verbraucht" in html
    assert re.search(r'<meter[^>]*value="1000"', html)              # the meter stops at its maximum
    assert "<td>Synchronisation</td>" in html


def test_a_ledger_that_cannot_be_read_leaves_the_card_out_not_the_overview(board):
    class Broken(MemoryCreditLedger):
        def totals(self, since):
            raise OSError("database gone")

    sources: OverviewSources = board.parts.overview_sources
    sources.credits = Broken()

    assert overview(sources).credits is None
    answer = board.signed_in("viewer").get("/")
    assert answer.status_code == 200 and "API credits (24 h)" not in answer.get_data(as_text=True)


def test_the_summary_counts_every_known_purpose_and_any_other(board):
    ledger = MemoryCreditLedger(now=board.clock)
    ledger.spend(CreditUse("search", 3, purpose="import"))
    ledger.spend(CreditUse("upsert", 2))

    summary = credit_summary(ledger, 50, board.clock())

    assert summary.used == 5 and summary.share == 0.1 and summary.percent == 10.0
    assert summary.by_purpose == (("sync", 2), ("backfill", 0), ("sweep", 0), ("link", 0), ("check", 0), ("import", 3))
    assert summary.by_call == (CreditTotal("search", "import", 3, 1), CreditTotal("upsert", "sync", 2, 1))
    assert summary.as_dict()["by_purpose"]["import"] == 3


def test_the_credits_noted_are_counted_for_prometheus(store, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)

    def scraped() -> float:
        body, _ = metrics_exposition()
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == "syncbridge_zoho_credits_total" and sample.labels == {"call": "upsert",
                                                                                         "purpose": "backfill"}:
                    return sample.value
        return 0.0

    before = scraped()
    ledger = credit_ledger(store)
    ledger.spend(CreditUse("upsert", 10, purpose=BACKFILL_PURPOSE, records=100))
    ledger.spend(CreditUse("upsert", 2, purpose=BACKFILL_PURPOSE, records=11))

    assert scraped() - before == 12
    assert ledger.used(board_start(), purposes=(BACKFILL_PURPOSE,)) == 12


def board_start():
    from datetime import UTC, datetime

    return datetime.now(UTC) - timedelta(minutes=1)
