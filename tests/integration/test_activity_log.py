"""The activity log as the Events pages read it: one contract for the SQL adapter (SQLite, PostgreSQL) and the fake."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from simulators.fakes.events import MemoryActivityLog
from simulators.fakes.store import MemoryStore
from syncbridge.adapters.db.events import SqlActivityLog
from syncbridge.adapters.db.sql import SqlStore
from syncbridge.handlers.events import decode_cursor, encode_cursor, event_page, export_events, record_timeline
from syncbridge.ports import ActivityEntry, EventFilter
from tests.support.databases import emptied_engine

SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", *SQL_BACKENDS])
def logs(request) -> Iterator[tuple[object, object]]:
    """(store that writes, activity log that reads) on each backend."""
    if request.param == "memory":
        store = MemoryStore()
        yield store, MemoryActivityLog(store)
        return
    engine = emptied_engine(request.getfixturevalue(f"migrated_{request.param}_url"))
    yield SqlStore(engine), SqlActivityLog(engine)
    engine.dispose()


def attempt(store, minute: int, **values) -> ActivityEntry:
    base = dict(direction="crm_to_ameise", action="updated", result="ok", entity="customer", zoho_module="Contacts",
                zoho_id=f"z{minute}", ameise_id=f"K{minute}", event_id=f"e{minute}", source="zoho-workflow",
                received_at=T0 + timedelta(minutes=minute), attempt=1, duration_ms=12,
                at=T0 + timedelta(minutes=minute))
    return store.log(ActivityEntry(**{**base, **values}))


def test_the_list_holds_attempts_only_newest_first_with_every_column(logs):
    store, log = logs
    first = attempt(store, 1, details={"message": {"record_id": "z1"}})
    store.log(ActivityEntry(direction="crm_to_ameise", action="created", result="ok", entity="customer",
                            zoho_id="z1", event_id="e1", at=T0 + timedelta(minutes=1, seconds=1),
                            details={"written": {"Nachname": "Müller"}}))   # a step: not on the list
    second = attempt(store, 2, result="error", action="failed", error="zoho INVALID_DATA field=Email: bad",
                     error_kind="rejected", error_code="INVALID_DATA", error_field="Email")
    found = log.events(EventFilter())
    assert [e.id for e in found] == [second.id, first.id]
    assert (found[0].error_kind, found[0].error_code, found[0].error_field, found[0].source, found[0].attempt,
            found[0].duration_ms, found[0].received_at) == (
        "rejected", "INVALID_DATA", "Email", "zoho-workflow", 1, 12, T0 + timedelta(minutes=2))


def test_keyset_pages_cover_every_entry_once_even_with_equal_times(logs):
    store, log = logs
    ids = [attempt(store, minute // 3).id for minute in range(20)]     # three entries per minute
    seen, after = [], None
    while True:
        page = event_page(log, EventFilter(), after, size=7)
        seen += [e.id for e in page.entries]
        if page.next_cursor is None:
            break
        after = decode_cursor(encode_cursor(page.next_cursor))
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen)) == 20


@pytest.mark.parametrize(("flt", "expected"), [
    (EventFilter(direction="ameise_to_crm"), {3}),
    (EventFilter(entity="contract"), {2}),
    (EventFilter(result="error"), {2, 3}),
    (EventFilter(error_kind="unavailable"), {3}),
    (EventFilter(record="K2"), {2}),
    (EventFilter(record="z1"), {1}),
    (EventFilter(text="bad gateway"), {3}),           # a part of the error, any case
    (EventFilter(text="100%"), set()),                # wildcards are taken literally
    (EventFilter(text="e2"), {2}),                    # an event id exactly
    (EventFilter(text="deals"), {2}),                 # a module
    (EventFilter(since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=3)), {2}),
])
def test_each_filter(logs, flt, expected):
    store, log = logs
    attempt(store, 1)
    attempt(store, 2, entity="contract", zoho_module="Deals", result="error", error="zoho INVALID_DATA",
            error_kind="rejected")
    attempt(store, 3, direction="ameise_to_crm", result="error", error="zoho 502: Bad Gateway",
            error_kind="unavailable", zoho_id=None)
    assert {int(e.event_id[1:]) for e in log.events(flt)} == expected


def test_an_event_whole_and_a_record_timeline_through_its_link(logs):
    store, log = logs
    first = attempt(store, 1, result="error", action="retry", error_kind="unavailable")
    step = store.log(ActivityEntry(direction="crm_to_ameise", action="created", result="ok", entity="customer",
                                   zoho_id="z1", ameise_id="K1", event_id="e1", at=T0 + timedelta(minutes=5)))
    retry = attempt(store, 1, attempt=2, at=T0 + timedelta(minutes=6))
    back = store.log(ActivityEntry(direction="ameise_to_crm", action="updated", result="ok", entity="customer",
                                   ameise_id="K1", event_id="9:customer:K1", attempt=1, source="dailyup",
                                   at=T0 + timedelta(minutes=9)))
    attempt(store, 2)
    assert [e.id for e in log.event_entries("e1")] == [first.id, step.id, retry.id]
    store.save_link("customer", "Contacts", "z1", "K1")
    timeline = record_timeline(log, store, "customer", "K1")
    assert timeline.link.zoho_id == "z1" and set(timeline.ids) == {"z1", "K1"}
    assert [e.id for e in timeline.entries] == [back.id, retry.id, step.id, first.id]


def test_the_csv_export_streams_every_match_for_german_spreadsheets(logs):
    store, log = logs
    for minute in range(5):
        attempt(store, minute, result="error", error="=HYPERLINK(\"x\")", error_kind="rejected")
    attempt(store, 9)
    data = b"".join(export_events(log, EventFilter(result="error"), batch=2)).decode("utf-8")
    lines = data.split("\r\n")
    assert data.startswith("\ufefftime;direction;")
    assert len([line for line in lines if line]) == 1 + 5
    assert all("'=HYPERLINK" in line for line in lines[1:] if line)      # defused


def test_saved_views_are_per_user_and_replaced_by_name(logs):
    _store, log = logs
    log.save_view("anna", "Fehler", {"result": "error"})
    log.save_view("anna", "Fehler", {"result": "error", "direction": "crm_to_ameise"})
    other = log.save_view("ben", "Fehler", {"result": "ok"})
    [view] = log.views("anna")
    assert view.query == {"result": "error", "direction": "crm_to_ameise"}
    assert not log.delete_view("anna", other.id)
    assert log.delete_view("anna", view.id) and log.views("anna") == []
