"""What the Events and Record timeline pages show: pages of attempts, one event whole, a record's history, CSV.

The activity log holds two kinds of entries: a consumer's *attempts* at a
message (``attempt`` set: source, when received, attempt number, duration,
result, error kind/code/field; the Events list) and the handler's *steps*
within one (created, updated, written_back, ...: what was read from Zoho and
written to Ameise, in their ``details``).  An event's detail is all entries of
its event id.  Personal data is only ever in ``details``, which the list, the
CSV export and the free-text search leave out.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from syncbridge.config import ameise_deep_link
from syncbridge.dailyup.export import chunked, csv_lines
from syncbridge.ports import ActivityEntry, ActivityLog, EventCursor, EventFilter, Link, SavedViews, Store


@dataclass
class EventSources:
    """What the Events and Record timeline pages read, built by ``syncbridge.bootstrap.dashboard_parts``."""

    log: ActivityLog
    views: SavedViews
    store: Store                         # the links between Zoho records and Ameise numbers
    ameise_portal_url: str               # SYNCBRIDGE_AMEISE_PORTAL_URL
    zoho_accounts_url: str               # SYNCBRIDGE_ZOHO_ACCOUNTS_URL: the data centre of the CRM's web address


PAGE_SIZE = 50
MAX_DETAIL = 4000          # characters of a message, a record read or a body written kept in an entry
EXPORT_BATCH = 1000
CSV_COLUMNS = ["time", "direction", "source", "module", "entity", "record", "ameise_number", "event", "attempt",
               "action", "result", "duration_ms", "error_kind", "error_code", "error_field", "error"]


def bounded(value: Any, limit: int = MAX_DETAIL) -> Any:
    """``value`` as kept in an entry's details: as it is if its JSON is short, else its JSON cut to ``limit``."""
    text = json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    if len(text) <= limit:
        return value
    return {"truncated": True, "json": text[:limit]}


# ---------------------------------------------------------------- cursors
def encode_cursor(cursor: EventCursor) -> str:
    """A cursor as a URL parameter: ``<ISO time>~<id>`` (neither holds personal data)."""
    return f"{cursor[0].isoformat()}~{cursor[1]}"


def decode_cursor(text: str | None) -> EventCursor | None:
    """The cursor of :func:`encode_cursor`; None for anything else."""
    if not text or "~" not in text:
        return None
    moment, _sep, entry_id = text.rpartition("~")
    try:
        at = datetime.fromisoformat(moment)
    except ValueError:
        return None
    if at.tzinfo is None or not entry_id.isdigit():
        return None
    return at, int(entry_id)


@dataclass(frozen=True)
class EventPage:
    entries: list[ActivityEntry]
    next_cursor: EventCursor | None      # where the next (older) page begins; None on the last page


def event_page(log: ActivityLog, flt: EventFilter, after: EventCursor | None = None,
               size: int = PAGE_SIZE) -> EventPage:
    """One page of the Events list, newest first, and the cursor of the next."""
    found = log.events(flt, after=after, limit=size + 1)
    entries = found[:size]
    more = len(found) > size and entries and entries[-1].at is not None and entries[-1].id is not None
    return EventPage(entries, (entries[-1].at, entries[-1].id) if more else None)  # type: ignore[arg-type]


@dataclass(frozen=True)
class EventDetail:
    entry: ActivityEntry                 # the entry opened
    attempts: list[ActivityEntry]        # every attempt at the event, oldest first
    steps: list[ActivityEntry]           # what the handler did, oldest first


def event_detail(log: ActivityLog, entry_id: int) -> EventDetail | None:
    """The event of entry ``entry_id``: its attempts and steps (only the entry itself when it has no event id)."""
    entry = log.entry(entry_id)
    if entry is None:
        return None
    entries = log.event_entries(entry.event_id) if entry.event_id else [entry]
    return EventDetail(entry, [e for e in entries if e.attempt is not None], [e for e in entries if e.attempt is None])


# ---------------------------------------------------------------- a record's timeline
@dataclass(frozen=True)
class Timeline:
    entity: str
    ids: tuple[str, ...]                 # the record's ids on both sides that were searched
    link: Link | None
    entries: list[ActivityEntry]


def record_timeline(log: ActivityLog, store: Store, entity: str, record: str, *, limit: int = 500) -> Timeline:
    """Everything that happened to one customer or contract, both directions, newest first.

    ``record`` is its Zoho id or its Kundennummer / Vertragsnummer; through the
    link the other side's id is searched too.
    """
    link = store.find_link(entity, zoho_id=record) or store.find_link(entity, ameise_id=record)
    ids = tuple(dict.fromkeys(i for i in (record, link and link.zoho_id, link and link.ameise_id) if i))
    entries = [e for e in log.record_entries(ids, limit=limit) if e.entity in (None, entity)]
    return Timeline(entity, ids, link, entries)


# ---------------------------------------------------------------- deep links
def ameise_link(portal_url: str, entity: str, number: str) -> str:
    """The record in the Ameise broker portal (``?show=kunde&kunde=`` / ``?show=vertrag&vertrag=``)."""
    return ameise_deep_link(portal_url, "contract" if entity == "contract" else "customer", number)


def zoho_web_url(accounts_url: str) -> str:
    """The CRM's web address of the data centre of ``accounts_url`` (accounts.zoho.eu -> https://crm.zoho.eu).

    An accounts server of another name (the simulator of ``syncbridge run``) serves the record pages itself.
    """
    parts = urlsplit(accounts_url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    if not host.startswith("accounts."):
        return f"{parts.scheme or 'https'}://{host}{port}"
    return f"{parts.scheme or 'https'}://crm.{host.split('accounts.', 1)[1]}{port}"


def zoho_link(accounts_url: str, module: str, record_id: str) -> str:
    """The record in Zoho CRM: ``https://crm.zoho.<dc>/crm/tab/<module>/<id>``."""
    return f"{zoho_web_url(accounts_url)}/crm/tab/{quote(module, safe='')}/{quote(record_id, safe='')}"


# ---------------------------------------------------------------- CSV
def _csv_row(entry: ActivityEntry) -> dict[str, Any]:
    return {
        "time": entry.at.isoformat() if entry.at else "", "direction": entry.direction, "source": entry.source,
        "module": entry.zoho_module, "entity": entry.entity, "record": entry.zoho_id,
        "ameise_number": entry.ameise_id, "event": entry.event_id, "attempt": entry.attempt,
        "action": entry.action, "result": entry.result, "duration_ms": entry.duration_ms,
        "error_kind": entry.error_kind, "error_code": entry.error_code, "error_field": entry.error_field,
        "error": entry.error,
    }


def export_events(log: ActivityLog, flt: EventFilter, *, batch: int = EXPORT_BATCH) -> Iterator[bytes]:
    """Every attempt ``flt`` matches as CSV for German spreadsheets (``;``, UTF-8 BOM, formulas defused), streamed.

    Read page by page along the same keyset as the list: memory stays flat however many match.
    """
    def rows() -> Iterator[dict[str, Any]]:
        after: EventCursor | None = None
        while True:
            page = log.events(flt, after=after, limit=batch)
            for entry in page:
                yield _csv_row(entry)
            if len(page) < batch or page[-1].at is None or page[-1].id is None:
                return
            after = (page[-1].at, page[-1].id)

    return chunked(csv_lines(CSV_COLUMNS, rows()))

