"""The Events and Record timeline pages through Flask's test client: list, filters, keyset, detail, CSV, views, links."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from syncbridge.ports import ActivityEntry
from tests.support.dashboard import Dashboard, post_form

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def board(database_url, store) -> Dashboard:
    return Dashboard.build(database_url, store=store, ameise_portal_url="https://portal.example",
                           zoho_accounts_url="https://accounts.zoho.com")


def text_of(answer) -> str:
    return answer.get_data(as_text=True)


def attempt(store, minute: int, **values) -> ActivityEntry:
    base = dict(direction="crm_to_ameise", action="updated", result="ok", entity="customer", zoho_module="Contacts",
                zoho_id=f"41508680000{minute:05d}", ameise_id=f"50000{minute:05d}", event_id=f"evt-{minute}",
                source="zoho-workflow", attempt=1, duration_ms=30 + minute, at=T0 + timedelta(minutes=minute),
                details={"message": {"record_id": f"41508680000{minute:05d}"}})
    return store.log(ActivityEntry(**{**base, **values}))


def ids_on(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'href="/events/(\d+)"', html)]


def test_the_events_page_needs_a_sign_in_and_is_in_the_navigation(board):
    assert board.client().get("/events").status_code == 302
    html = text_of(board.signed_in("viewer").get("/"))
    assert 'href="/events"' in html


def test_the_list_shows_attempts_newest_first_and_pages_by_keyset(board, store):
    made = [attempt(store, minute) for minute in range(60)]
    client = board.signed_in("viewer")
    first = text_of(client.get("/events"))
    assert ids_on(first) == [e.id for e in reversed(made)][:50]
    assert "zoho-workflow" in first and "89 ms" in first and "CRM → Ameise" in first
    older = re.search(r'href="(/events\?after=[^"]+)"', first).group(1).replace("&amp;", "&")
    assert "OFFSET" not in older.upper() and "page=" not in older
    second = text_of(client.get(older))
    assert ids_on(second) == [e.id for e in reversed(made)][50:]
    assert "Older events" not in second


def test_a_filter_is_kept_in_the_session_not_in_the_url(board, store):
    attempt(store, 1)
    failed = attempt(store, 2, result="error", action="failed", error="zoho INVALID_DATA field=Email: invalid",
                     error_kind="rejected", error_code="INVALID_DATA", error_field="Email")
    client = board.signed_in("viewer")
    answer = post_form(client, "/events", "/events", {"result": "error", "record": failed.ameise_id,
                                                      "direction": "sideways"})
    assert answer.status_code == 303 and answer.headers["Location"] == "/events"
    html = text_of(client.get("/events"))
    assert ids_on(html) == [failed.id] and "Rejected" in html
    assert post_form(client, "/events", "/events", {"q": "invalid_data"}).status_code == 303
    assert ids_on(text_of(client.get("/events"))) == [failed.id]
    assert post_form(client, "/events", "/events", {"reset": "1"}).status_code == 303
    assert len(ids_on(text_of(client.get("/events")))) == 2


def test_a_time_range_is_read_in_german_time(board, store):
    attempt(store, 0)                                   # 10:00 in Berlin
    late = attempt(store, 90)                           # 11:30 in Berlin
    client = board.signed_in("viewer")
    post_form(client, "/events", "/events", {"since": "2026-11-02T11:00", "until": "not a time"})
    assert ids_on(text_of(client.get("/events"))) == [late.id]


def test_the_detail_shows_each_attempt_the_message_and_what_was_read_and_written(board, store):
    first = attempt(store, 1, result="error", action="retry", error="ameise 503: down", error_kind="unavailable")
    store.log(ActivityEntry(direction="crm_to_ameise", action="created", result="ok", entity="customer",
                            zoho_id=first.zoho_id, ameise_id=first.ameise_id, event_id=first.event_id,
                            details={"read": {"Last_Name": "Müller"}, "written": {"Nachname": "Müller"}}))
    attempt(store, 1, attempt=2, at=T0 + timedelta(minutes=5))
    html = text_of(board.signed_in("viewer").get(f"/events/{first.id}"))
    assert "Attempt 1" in html and "Attempt 2" in html and "ameise 503: down" in html
    assert "Read from Zoho" in html and "Written to Ameise" in html and "Müller" in html
    assert "record_id" in html          # the message
    assert board.signed_in("viewer").get("/events/999999").status_code == 404


def test_the_csv_export_streams_the_filtered_view_and_is_audited(board, store):
    attempt(store, 1, error="=cmd|' /C calc'!A0", result="error", error_kind="rejected")
    attempt(store, 2)
    client = board.signed_in("viewer")
    post_form(client, "/events", "/events", {"result": "error"})
    answer = client.get("/events/export.csv")
    assert answer.status_code == 200 and answer.is_streamed and answer.mimetype == "text/csv"
    data = answer.get_data().decode("utf-8")
    assert data.startswith("\ufefftime;") and len(data.strip().split("\r\n")) == 2
    assert ";'=cmd" in data
    [entry] = board.parts.operators.audit_entries(limit=1)
    assert (entry.actor, entry.action, entry.details) == ("viewer", "events.exported", {"details_fields": ["result"]})


def test_saved_views_belong_to_their_user_and_are_audited(board, store):
    attempt(store, 1)
    failed = attempt(store, 2, result="error", error_kind="rejected")
    client = board.signed_in("operator")
    post_form(client, "/events", "/events", {"result": "error"})
    assert post_form(client, "/events", "/events/views", {"name": "Fehler"}).status_code == 303
    post_form(client, "/events", "/events", {"reset": "1"})
    view_id = re.search(r'/events/views/(\d+)/apply', text_of(client.get("/events"))).group(1)
    assert post_form(client, "/events", f"/events/views/{view_id}/apply").status_code == 303
    assert ids_on(text_of(client.get("/events"))) == [failed.id]
    other = board.signed_in("viewer")
    assert "Fehler" not in text_of(other.get("/events"))
    assert post_form(other, "/events", f"/events/views/{view_id}/apply").status_code == 404
    assert post_form(other, "/events", f"/events/views/{view_id}/delete").status_code == 404
    assert post_form(client, "/events", f"/events/views/{view_id}/delete").status_code == 303
    actions = [e.action for e in board.parts.operators.audit_entries(limit=5)]
    assert actions[:2] == ["events.view_deleted", "events.view_saved"]


def test_a_view_needs_a_name_and_every_post_its_csrf_token(board):
    client = board.signed_in("viewer")
    assert "Please give the view a name." in text_of(post_form(client, "/events", "/events/views", {"name": " "},
                                                                 follow_redirects=True))
    assert client.post("/events", data={"result": "error"}).status_code == 400


def test_the_record_timeline_shows_both_directions_and_links_into_zoho_and_ameise(board, store):
    sync = attempt(store, 1)
    store.save_link("customer", "Contacts", sync.zoho_id, sync.ameise_id)
    back = store.log(ActivityEntry(direction="ameise_to_crm", action="updated", result="ok", entity="customer",
                                   ameise_id=sync.ameise_id, event_id="3:customer:x", attempt=1, source="dailyup",
                                   at=T0 + timedelta(hours=1)))
    attempt(store, 2)
    html = text_of(board.signed_in("viewer").get(f"/events/timeline/customer/{sync.ameise_id}"))
    assert ids_on(html) == [back.id, sync.id]
    assert "Ameise → CRM" in html and "CRM → Ameise" in html
    assert f'href="https://crm.zoho.com/crm/tab/Contacts/{sync.zoho_id}"' in html
    assert f'href="https://portal.example/maklerportal/?show=kunde&amp;kunde={sync.ameise_id}"' in html
    assert board.signed_in("viewer").get("/events/timeline/person/1").status_code == 404


def test_the_pages_speak_german(board, store):
    attempt(store, 1)
    client = board.signed_in("viewer", language="de")
    html = text_of(client.get("/events"))
    assert "Ereignisse" in html and "Gespeicherte Ansichten" in html and "Als CSV herunterladen" in html


@pytest.mark.parametrize(("accounts", "web"), [
    ("https://accounts.zoho.eu", "https://crm.zoho.eu"),
    ("https://accounts.zoho.com.au", "https://crm.zoho.com.au"),
    ("https://accounts.zohocloud.ca", "https://crm.zohocloud.ca"),
    ("http://127.0.0.1:8001", "http://127.0.0.1:8001"),        # the simulator serves its record pages itself
])
def test_the_crm_web_address_follows_the_accounts_server(accounts, web):
    from syncbridge.handlers.events import zoho_link, zoho_web_url

    assert zoho_web_url(accounts) == web
    assert zoho_link(accounts, "Contacts", "3652397000000649013") == f"{web}/crm/tab/Contacts/3652397000000649013"
