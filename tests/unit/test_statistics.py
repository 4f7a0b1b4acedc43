"""Statistics of the activity log: the core's counting and the page's chart, table and latest records."""
from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from simulators.fakes.store import MemoryStore
from syncbridge.handlers.statistics import StatisticsSources, kind_of, recent_syncs, statistics
from syncbridge.ports import AMEISE_TO_CRM, CRM_TO_AMEISE, SYSTEM, ActivityEntry
from tests.support.clock import FakeClock
from tests.support.dashboard import Dashboard

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def log(store, days_ago: int, direction, action: str, result: str = "ok", entity: str | None = "customer",
        zoho_id: str = "3652397000000649013", ameise_id: str = "5000733103"):
    return store.log(ActivityEntry(direction, action, result, entity=entity, zoho_id=zoho_id, ameise_id=ameise_id,
                                   at=NOW - timedelta(days=days_ago, minutes=1)))


@pytest.mark.parametrize(("action", "result", "kind"), [
    ("created", "ok", "created"), ("updated", "ok", "changed"), ("deleted", "ok", "deleted"),
    ("marked", "ok", "deleted"), ("failed", "error", "failed"), ("dead_lettered", "error", "failed"),
    ("written_back", "error", "failed"), ("skipped", "ok", None), ("written_back", "ok", None),
    ("duplicate", "ok", None), ("waiting", "ok", None),
])
def test_what_each_action_counts_as(action, result, kind):
    assert kind_of(action, result) == kind


def test_counts_per_entity_direction_and_day_over_the_range():
    store = MemoryStore()
    log(store, 0, CRM_TO_AMEISE, "created")
    log(store, 0, CRM_TO_AMEISE, "updated")
    log(store, 0, CRM_TO_AMEISE, "failed", "error")
    log(store, 2, AMEISE_TO_CRM, "updated", entity="contract")
    log(store, 2, AMEISE_TO_CRM, "skipped", entity="contract")          # no change of a record
    log(store, 2, SYSTEM, "token_refreshed", entity=None)
    log(store, 7, CRM_TO_AMEISE, "created")                             # before a 7-day range

    stats = statistics(StatisticsSources(store, store, now=lambda: NOW), days=7)

    assert (stats.first_day, stats.last_day) == (date(2025, 3, 4), date(2025, 3, 10))
    by = {(s.entity, s.direction): s for s in stats.series}
    assert len(stats.series) == 4 and all(len(s.days) == 7 for s in stats.series)
    customers = by[("customer", CRM_TO_AMEISE)]
    assert customers.days[-1] == (date(2025, 3, 10), {"created": 1, "changed": 1, "deleted": 0, "failed": 1})
    assert customers.totals == {"created": 1, "changed": 1, "deleted": 0, "failed": 1} and customers.peak == 3
    assert by[("contract", AMEISE_TO_CRM)].days[-3][1]["changed"] == 1
    assert by[("contract", AMEISE_TO_CRM)].totals["changed"] == 1
    assert by[("customer", AMEISE_TO_CRM)].peak == 0
    with pytest.raises(ValueError):
        statistics(StatisticsSources(store, store, now=lambda: NOW), days=5)


def test_the_latest_synced_records_skip_entries_that_changed_no_record_and_stop_at_the_limit():
    store = MemoryStore()
    wanted = [log(store, 1, CRM_TO_AMEISE, "created", zoho_id=str(n)) for n in range(5)]
    for _ in range(30):                                                 # newer, but no change of a record
        log(store, 0, SYSTEM, "token_refreshed", entity=None)
    latest = log(store, 0, AMEISE_TO_CRM, "failed", "error", entity="contract")

    found = recent_syncs(store, limit=4)

    assert [e.id for e in found] == [latest.id, wanted[4].id, wanted[3].id, wanted[2].id]


def test_a_delivery_that_succeeded_counts_and_lists_once_and_a_failed_attempt_counts_as_failed():
    store = MemoryStore()
    step = log(store, 0, AMEISE_TO_CRM, "updated")                     # the handler's own step
    store.log(replace(step, id=None, attempt=1, duration_ms=30))       # the consumer's entry of the same delivery
    failed = store.log(ActivityEntry(CRM_TO_AMEISE, "dead_lettered", "error", entity="customer", zoho_id="7",
                                     at=NOW - timedelta(minutes=1), attempt=3))

    stats = statistics(StatisticsSources(store, store, now=lambda: NOW), days=7)

    by = {(s.entity, s.direction): s for s in stats.series}
    assert by[("customer", AMEISE_TO_CRM)].totals == {"created": 0, "changed": 1, "deleted": 0, "failed": 0}
    assert by[("customer", CRM_TO_AMEISE)].totals == {"created": 0, "changed": 0, "deleted": 0, "failed": 1}
    assert sorted(e.id for e in recent_syncs(store, limit=10)) == sorted([step.id, failed.id])


# ---------------------------------------------------------------- the page
@pytest.fixture
def board(database_url, store) -> Dashboard:
    board = Dashboard.build(database_url, store=store)
    board.clock.current = NOW
    return board


def test_the_page_draws_a_bar_part_with_its_title_per_day_and_kind_and_a_table_beside(board, store):
    log(store, 0, CRM_TO_AMEISE, "created")
    log(store, 0, CRM_TO_AMEISE, "created")
    log(store, 1, CRM_TO_AMEISE, "failed", "error")
    log(store, 3, AMEISE_TO_CRM, "deleted", entity="contract", ameise_id="VN-1")

    page = board.signed_in("viewer").get("/statistics").get_data(as_text=True)

    bars = re.findall(r'<rect class="bar kind-(\w+)"[^>]*height="([\d.]+)"><title>([^<]+)</title>', page)
    assert sorted((kind, title) for kind, _, title in bars) == [
        ("created", "Mar 10, 2025: 2 created"), ("deleted", "Mar 7, 2025: 1 deleted"),
        ("failed", "Mar 9, 2025: 1 failed")]
    heights = {title: float(height) for _, height, title in bars}
    assert heights["Mar 10, 2025: 2 created"] == pytest.approx(2 * heights["Mar 9, 2025: 1 failed"])
    assert page.count('role="img"') == 4 and "<summary>As a table</summary>" in page
    assert '<th scope="row">Mar 10, 2025</th><td class="num">2</td><td class="num">0</td>' in page
    assert "Last 4 synced records" in page and "Zoho 3652397000000649013" in page


@pytest.mark.parametrize(("query", "days"), [("", 14), ("?days=7", 7), ("?days=90", 90), ("?days=5", 14),
                                             ("?days=x", 14)])
def test_the_range_selector_offers_fixed_periods(board, query, days):
    page = board.signed_in("viewer").get("/statistics" + query).get_data(as_text=True)
    assert f'<option value="{days}" selected>' in page
    assert page.count('<tr><th scope="row">') == 4 * days


def test_the_page_speaks_german_and_says_when_nothing_happened(board):
    page = board.signed_in("viewer", language="de").get("/statistics").get_data(as_text=True)
    assert "Statistik" in page and "Nichts in diesem Zeitraum." in page and "angelegt" in page
    assert "Noch kein Datensatz wurde synchronisiert." in page
    assert isinstance(board.clock, FakeClock)
