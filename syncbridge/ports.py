"""The ports: the small interfaces through which the core talks to the world.

The core (``syncbridge.handlers``, ``syncbridge.dailyup``, ``syncbridge.mapping``)
imports only these.  Real implementations live in ``syncbridge.adapters``
(:mod:`~syncbridge.adapters.zoho`, :mod:`~syncbridge.adapters.ameise`, the SQL
store in :mod:`~syncbridge.adapters.db`); in-memory ones for fast tests and the
demo in ``simulators.fakes``; publishing is ``producers``.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


# ---------------------------------------------------------------- outside systems
@dataclass(frozen=True)
class RecordResult:
    """The outcome of one record of a Zoho insert / update / upsert / delete, in request order."""

    ok: bool
    code: str                      # SUCCESS, MANDATORY_NOT_FOUND, DUPLICATE_DATA, INVALID_DATA, ...
    message: str = ""
    action: str | None = None      # "insert", "update" or "delete" on success
    record_id: str | None = None   # details.id on success
    field: str | None = None       # details.api_name on a per-record error; several joined by ", "
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    fields: tuple[str, ...] = ()   # every field Zoho refused (each entry of MULTIPLE_OR_MULTI_ERRORS)


@dataclass(frozen=True)
class CrmField:
    """One field of a CRM module as the CRM's field metadata describes it.

    ``unique`` is the field's own "Do not allow duplicate values" flag (a custom field
    created unique).  ``duplicate_check`` says whether an upsert may match on the
    field: true for a unique field and for the module's system duplicate-check field
    (Contacts/Leads ``Email``, Accounts ``Account_Name``, Deals ``Deal_Name``), which
    Zoho's field metadata does not flag as unique.
    """

    api_name: str
    data_type: str                 # Zoho's data_type: text, textarea, email, phone, integer, double,
                                   # currency, date, datetime, picklist, multiselectpicklist, lookup, boolean, ...
    length: int | None = None
    unique: bool = False           # "Do not allow duplicate values"
    custom_field: bool = False
    pick_list_values: tuple[str, ...] = ()   # the actual values a picklist accepts
    lookup_module: str | None = None
    duplicate_check: bool = False  # an upsert may name it in duplicate_check_fields (unique or system check field)
    read_only: bool = False


class CrmClient(Protocol):
    """Zoho CRM records API (https://www.zoho.com/crm/developer/docs/api/v7/)."""

    def get_record(self, module: str, record_id: str) -> dict[str, Any] | None:
        """The full record, or None when the CRM does not have it."""

    def insert_records(self, module: str, records: Sequence[dict[str, Any]]) -> list[RecordResult]:
        """Insert up to 100 records with ``"trigger": []``."""

    def update_records(self, module: str, records: Sequence[dict[str, Any]]) -> list[RecordResult]:
        """Update up to 100 records (each carries its ``id``) with ``"trigger": []``."""

    def upsert_records(
        self, module: str, records: Sequence[dict[str, Any]], duplicate_check_fields: Sequence[str]
    ) -> list[RecordResult]:
        """Upsert up to 100 records with ``"trigger": []``."""

    def delete_records(self, module: str, record_ids: Sequence[str]) -> list[RecordResult]:
        """Delete up to 100 records by id without firing workflow rules; one result per id."""

    def find_records_by_field(self, module: str, field: str, value: Any) -> list[dict[str, Any]]:
        """Every record of ``module`` whose ``field`` equals ``value`` (all pages)."""

    def field_metadata(self, module: str) -> list[CrmField]:
        """The fields of a module (GET /settings/fields?module=)."""

    def list_records(self, module: str, fields: Sequence[str], *,
                     modified_since: datetime | None = None) -> list[dict[str, Any]]:
        """Every record of ``module`` with up to 50 ``fields``; only those modified after ``modified_since``."""

    def deleted_records(self, module: str, kind: str = "all") -> list[dict[str, Any]]:
        """The records of ``module`` deleted lately (GET /{module}/deleted): id, display_name, deleted_time, ..."""

    def records_page(self, module: str, fields: Sequence[str], *, cursor: str | None = None,
                     modified_since: datetime | None = None) -> RecordPage:
        """One page of ``list_records`` from ``cursor`` (None: the first); its ``next_cursor`` reads on."""

    def webhook_failures(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """Zoho's failed webhook calls (GET /settings/automation/webhook_failures), those at or after ``since``."""


class AmeiseClient(Protocol):
    """Ameise employee web service (Dionera), for one connected employee."""

    def get_customer(self, kundennummer: str) -> dict[str, Any] | None:
        """The customer, or None when Ameise does not know the number."""

    def create_customer(self, data: dict[str, Any]) -> str:
        """Create a customer; return the new Kundennummer."""

    def update_customer(self, kundennummer: str, data: dict[str, Any]) -> None:
        """Update a customer's own fields (Anrede, Person, Vermittler)."""

    def set_main_address(self, kundennummer: str, address: dict[str, Any]) -> None:
        """Write the main address (``Hauptwohnsitz``) through the ``adressen`` sub-resource."""

    def add_contact(self, kundennummer: str, entry: dict[str, Any]) -> None:
        """Add one ``{Kontext, Typ, Value}`` entry to the customer's ``Kontaktdaten``."""

    def update_contact(self, kundennummer: str, contact_id: str, entry: dict[str, Any]) -> None:
        """Change the entry ``contact_id`` of the customer's ``Kontaktdaten``."""

    def search_customers(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """``KundenSuchErgebnis`` items (Id, Text, Person, Hauptwohnsitz) for ``{"q": ...}`` or ``{"mail": ...}``."""

    def customer_contracts(self, kundennummer: str) -> list[dict[str, Any]]:
        """The contracts of a customer; empty when Ameise knows none."""

    def get_contract(self, vertragsnummer: str) -> dict[str, Any] | None:
        """The contract, or None when Ameise does not know the number."""

    def create_contract(self, data: dict[str, Any]) -> str:
        """Create a contract; return the new Vertragsnummer."""

    def update_contract(self, vertragsnummer: str, data: dict[str, Any]) -> None:
        """Update a contract with a partial body."""


@runtime_checkable
class AmeiseConnection(Protocol):
    """Whether the Ameise connection is usable right now (the preflight check asks it)."""

    def check_connection(self) -> str:
        """A valid (refreshed if due) token and one cheap read; return the employee id.

        Raises ReconnectNeeded when a person must connect again, Unavailable when Ameise cannot be reached.
        """


@dataclass
class OAuthToken:
    """An OAuth2 grant as kept between processes."""

    access_token: str
    refresh_token: str
    expires_at: float                              # epoch seconds
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # api_domain (Zoho), employee_id (Ameise), scope


class TokenStore(Protocol):
    """Where access and refresh tokens are shared between processes."""

    def load(self, provider: str) -> OAuthToken | None:
        """The stored token of ``provider`` ("zoho", "ameise"), if any."""

    def save(self, provider: str, token: OAuthToken) -> None:
        """Store a token; marks the connection active."""

    def set_status(self, provider: str, status: str, detail: str = "") -> None:
        """Set the connection status: "active" or "reconnect_needed" (with why)."""

    def status(self, provider: str) -> tuple[str, str]:
        """(status, detail); ("not_connected", "") when nothing is stored."""


class Connector(Protocol):
    """The OAuth authorization-code flow of one system: connect or reconnect it by a person's consent."""

    supports_pkce: bool                 # whether the server takes a PKCE (RFC 7636) S256 challenge

    def authorization_url(self, state: str, code_challenge: str = "") -> str:
        """The consent URL a person opens; it redirects back with ``code`` and ``state``."""

    def exchange_code(self, code: str, code_verifier: str = "") -> OAuthToken:
        """Trade a code for a grant and store it in the token store (the connection becomes active)."""


# ---------------------------------------------------------------- the store
class Direction(StrEnum):
    """Direction of an entry of the activity log (stored as its plain string)."""

    CRM_TO_AMEISE = "crm_to_ameise"
    AMEISE_TO_CRM = "ameise_to_crm"
    SYSTEM = "system"


CRM_TO_AMEISE, AMEISE_TO_CRM, SYSTEM = Direction.CRM_TO_AMEISE, Direction.AMEISE_TO_CRM, Direction.SYSTEM


class LinkConflict(ValueError):
    """The Ameise number is already linked to another CRM record (a unique-key clash)."""


@dataclass(frozen=True)
class Link:
    """One record known on both sides: Zoho record id <-> Kundennummer / Vertragsnummer."""

    entity: str          # "customer" or "contract"
    zoho_module: str
    zoho_id: str
    ameise_id: str       # Kundennummer or Vertragsnummer
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class ActivityEntry:
    """One action of the system, as written to the activity log."""

    direction: str                  # a Direction
    action: str                     # created, updated, written_back, skipped, failed, dead_lettered, ...
    result: str                     # "ok" or "error"
    entity: str | None = None       # customer, contract
    zoho_module: str | None = None
    zoho_id: str | None = None
    ameise_id: str | None = None
    event_id: str | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    at: datetime | None = None      # set by the store when None
    id: int | None = None           # set by the store
    # An attempt of a consumer at one message (the Events page lists these; a handler's steps leave them None):
    source: str | None = None       # where the message came from: zoho-workflow, zoho-notify, dailyup, ...
    received_at: datetime | None = None   # when the receiver (or the DailyUp import) took the message in
    attempt: int | None = None      # 1 for the first delivery, 2 for the first retry, ...
    duration_ms: int | None = None
    error_kind: str | None = None   # a DeadLetterKind value, or "unavailable" / "reconnect_needed"
    error_code: str | None = None   # the other system's code (INVALID_DATA, 422, ...)
    error_field: str | None = None


@dataclass(frozen=True)
class EventFilter:
    """Which entries of the activity log the Events page lists; every given field must match."""

    since: datetime | None = None   # inclusive
    until: datetime | None = None   # exclusive
    direction: str | None = None
    entity: str | None = None
    result: str | None = None       # ok, error
    error_kind: str | None = None
    record: str | None = None       # a Zoho record id, Kundennummer or Vertragsnummer
    text: str | None = None         # a part of the error, the record ids, the event id or the module


# Where a page of the Events list ends: the (time, id) of its last entry, newest first.
EventCursor = tuple[datetime, int]


class ActivityLog(Protocol):
    """The activity log as the Events and Record timeline pages read it (``SqlActivityLog``)."""

    def events(self, flt: EventFilter, *, after: EventCursor | None = None, limit: int = 50) -> list[ActivityEntry]:
        """The attempts (entries with an ``attempt``) ``flt`` matches, newest first, older than ``after``."""

    def entry(self, entry_id: int) -> ActivityEntry | None:
        """One entry by its id."""

    def event_entries(self, event_id: str, *, limit: int = 500) -> list[ActivityEntry]:
        """Every entry of one event (its attempts and the handler's steps), oldest first."""

    def record_entries(self, ids: Sequence[str], *, limit: int = 500) -> list[ActivityEntry]:
        """Every entry whose Zoho id or Ameise number is one of ``ids``, newest first."""


@dataclass(frozen=True)
class SavedView:
    """A filter of the Events page an operator saved under a name (the filter's form fields)."""

    id: int
    owner: str
    name: str
    query: dict[str, str]
    created_at: datetime


class SavedViews(Protocol):
    """Saved filters, per user (``SqlActivityLog``)."""

    def save_view(self, owner: str, name: str, query: dict[str, str]) -> SavedView:
        """Save (or replace) the view ``name`` of ``owner``."""

    def views(self, owner: str) -> list[SavedView]:
        """The views of ``owner``, by name."""

    def delete_view(self, owner: str, view_id: int) -> bool:
        """Delete a view of ``owner``; whether there was one."""


@dataclass(frozen=True)
class RecordLease:
    """What a record's sync reads when it takes the record's lock (:meth:`Store.take_record`)."""

    synced_from: datetime | None = None    # when the last finished sync of the record began
    creating: bool = False                 # a create may have been sent without being linked
    # Read with it when asked (``take_record(link=...)``): the record's link, None when it has none.
    link: Link | None = None
    link_read: bool = False
    # The event (``take_record(event_id=...)``) was handled to the end already: the lock was NOT taken.
    processed: bool = False
    # This take noted a create as possibly under way (``take_record(note_create=True)``); ``creating`` still
    # tells whether one was noted before it.
    noted: bool = False


class Store(Protocol):
    tokens: TokenStore

    def find_link(self, entity: str, *, zoho_id: str | None = None, ameise_id: str | None = None) -> Link | None:
        """The link of a record by its id on either side."""

    def save_link(self, entity: str, zoho_module: str, zoho_id: str, ameise_id: str) -> Link:
        """Create or update the link of (entity, zoho_id); LinkConflict if the number belongs to another record."""

    def delete_link(self, entity: str, zoho_id: str) -> None:
        """Forget the link of (entity, zoho_id), once the CRM record is gone (idempotent)."""

    def lock_record(self, key: str, owner: str, ttl: float) -> bool:
        """Take the lock of one record for ``ttl`` seconds unless another owner holds it; whether it was taken."""

    def unlock_record(self, key: str, owner: str, *, synced_from: datetime | None = None) -> None:
        """Give the lock back; ``synced_from`` notes when a now finished sync of the record began."""

    def last_synced_from(self, key: str) -> datetime | None:
        """When the last finished sync of the record began (events received before it are covered)."""

    def note_create(self, key: str, creating: bool) -> None:
        """Note (True) that a create for this record is about to be sent to Ameise, or (False) that it is linked."""

    def create_under_way(self, key: str) -> bool:
        """Whether an earlier create for this record may have reached Ameise without being linked."""

    def was_processed(self, event_id: str) -> bool:
        """Whether an event was already handled to the end."""

    def mark_processed(self, event_id: str, outcome: str) -> None:
        """Remember that an event was handled (idempotent)."""

    def log(self, entry: ActivityEntry) -> ActivityEntry:
        """Append to the activity log; returns the entry with id and time."""

    def take_record(self, key: str, owner: str, ttl: float, *, event_id: str | None = None,
                    link: tuple[str, str] | None = None, note_create: bool = False) -> RecordLease | None:
        """Take the lock of one record as :meth:`lock_record`, in the same transaction reading what the
        sync needs of it; None when another owner holds it.

        ``event_id``: first tell whether that event was handled already (then the lock is not
        taken: ``processed``); ``link``: (entity, Zoho id) of the link to read with it;
        ``note_create`` (with ``link``): when the record has no link and no create is noted,
        note one as possibly under way (as :meth:`note_create`), in the same transaction
        (``noted``): a sync that may create needs no transaction of its own for the note."""

    def finish_record(self, key: str, owner: str, *, synced_from: datetime | None = None,
                      entries: Sequence[ActivityEntry] = (), processed: tuple[str, str] | None = None,
                      created: bool = False, link: Link | None = None,
                      echoes: Sequence[tuple[str, str, dict[str, Any]]] = (), withdrawn: bool = False) -> None:
        """End one record's sync in ONE transaction: save ``link`` (as :meth:`save_link`), append
        ``entries`` to the activity log, mark ``processed`` (event id, outcome; the first outcome
        stays), clear the create note when ``created`` (the record is linked), and give the lock
        back (as :meth:`unlock_record`).  ``echoes``: (entity, key, data) echo marks, written as
        :meth:`EchoMarks.remember_echo` writes them — given only to a store that is the sync's
        ``EchoMarks`` as well.  ``withdrawn``: clear the create note with the lock, if the lock is
        still this sync's: the note its lease made (``noted``) when no create was sent after all.

        Should ``link``'s number belong to another record, the rest is still done (the create
        note kept) and LinkConflict raised."""

    def activities(
        self,
        *,
        direction: str | None = None,
        entity: str | None = None,
        result: str | None = None,
        action: str | None = None,
        zoho_id: str | None = None,
        ameise_id: str | None = None,
        event_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[ActivityEntry]:
        """Activity log entries, newest first, filtered by any of the arguments."""

    def ping(self) -> None:
        """Raise when the database cannot be reached (readiness)."""


# ---------------------------------------------------------------- DailyUp (Ameise -> CRM)
@dataclass(frozen=True)
class SnapshotRow:
    """The last delivered state of one DailyUp row (normalized values, see syncbridge.deliveries)."""

    table: str                      # kunden, vertraege, or a lookup table
    key: str                        # Kundennummer, Vertragsnummer, or the lookup ID
    data: dict[str, Any]
    deleted: bool = False           # no longer delivered; ``data`` is the last delivered state
    import_id: int | None = None    # the import that last changed the row


class DailyUpSnapshot(Protocol):
    """What the return path reads of the DailyUp store when it applies deltas."""

    def snapshot_rows(self, table: str, keys: list[str]) -> dict[str, SnapshotRow]:
        """The rows of ``table`` with these keys (deleted ones included); unknown keys are left out."""

    def lookups(self, table: str) -> dict[str, str]:
        """A lookup list as ID -> Text (e.g. ``sparten``: ``{"010": "Kfz-Haftpflicht"}``); empty if never delivered."""


class EchoMarks(Protocol):
    """Where the CRM -> Ameise direction notes what it wrote, for the DailyUp diff to recognise."""

    def remember_echo(self, entity: str, key: str, data: dict[str, Any]) -> None:
        """Note the DailyUp columns (normalized) just written to customer/contract ``key``."""


@dataclass(frozen=True)
class DailyUpImport:
    """One delivery taken in, as the status pages and the CLI show it."""

    id: int
    file_name: str
    sha256: str
    hauptvermittler: str | None
    delivered_on: date | None
    source: str
    received_at: datetime
    finished_at: datetime | None
    state: str                      # importing, accepted, published, superseded, rejected
    message: str
    rows: dict[str, int]
    errors: int
    deltas: dict[str, int]
    encodings: dict[str, str]
    extra_columns: dict[str, list[str]]
    timings: dict[str, float]
    published_at: datetime | None


@dataclass(frozen=True)
class PendingDelta:
    """A delta of the outbox not yet confirmed by the broker."""

    id: int
    import_id: int
    delivered_on: date
    entity: str
    change: str
    key: str
    changed_fields: tuple[str, ...]
    echoed_fields: tuple[str, ...] = ()   # columns delivered as the CRM -> Ameise direction wrote them

    @property
    def delta_id(self) -> str:
        """Return the message id: ``<import id>:<entity>:<key>``."""
        return f"{self.import_id}:{self.entity}:{self.key}"


@dataclass(frozen=True)
class Candidate:
    """A delivered row that differs from the snapshot, or whose record has an echo mark."""

    key: str
    data: dict[str, Any]
    hash: str
    old_data: dict[str, Any] | None       # None: never delivered before
    old_hash: str | None
    deleted: bool                         # the snapshot has the record as no longer delivered
    echo: dict[str, Any] | None
    echo_written_at: datetime | None = None   # when the CRM -> Ameise direction wrote the echo mark
    raw_hash: bytes | None = None         # digest of the row's text as delivered (reader.raw_digest_key)


class ImportSession(Protocol):
    """One transaction of an import: staging, comparison, snapshot, outbox (``SqlDailyUpStore.session``)."""

    def lock(self, *, then: str | None = None) -> None:
        """Wait until no other import runs (two imports diffing at once would both see the old snapshot).

        ``then``: the table whose digests :meth:`raw_digests` is asked for first (they may be read meanwhile).
        """

    def find_import(self, sha256: str) -> DailyUpImport | None:
        """The import of the file with this SHA-256, if any."""

    def newest_accepted(self, hauptvermittler: str) -> DailyUpImport | None:
        """Return the accepted delivery of this Hauptvermittler with the latest delivery date."""

    def start_import(self, *, file_name: str, sha256: str, hauptvermittler: str | None, delivered_on: date | None,
                     source: str) -> int:
        """Create the import row in state "importing" (a rejected one of the same file is taken over)."""

    def finish_import(self, import_id: int, **values: Any) -> None:
        """Set the outcome of an import (state, message, counts) and its end time."""

    def add_row_errors(self, import_id: int, errors: Sequence[Any]) -> None:
        """Store row errors (``syncbridge.deliveries.RowError``) of an import."""

    def snapshot_data(self, table: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Return the stored data of these keys (deleted rows included)."""

    def stage(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows (import_id, table, key, line, hash, data, error) into staging.

        A row may carry the JSON text of its data as ``text`` (:func:`syncbridge.deliveries.row_text`).
        """

    def clear_staging(self) -> None:
        """Empty staging (imports run one at a time, so all of it belongs to the running one)."""

    def analyze_staging(self) -> None:
        """Give the planner the size of the freshly loaded staging table (joins of a million rows)."""

    def drop_erroneous(self, import_id: int) -> None:
        """Remove the valid rows of keys that also had an erroneous row: such a record stays as it was."""

    def lookup_texts(self, table: str) -> dict[str, str]:
        """Return a lookup list as ID -> Text, as this transaction sees it."""

    def count_staged(self, import_id: int, table: str) -> int:
        """Count the rows of ``table`` in staging, erroneous ones included."""

    def count_delivered(self, table: str) -> int:
        """Count the rows of ``table`` in the snapshot that are still delivered."""

    def candidates(self, import_id: int, table: str, entity: str | None, *, page: int = 5000) -> Iterator[list[Candidate]]:
        """Yield pages of valid staged rows that are new, re-delivered, changed, or have an echo mark."""

    def raw_digests(self, table: str, *, then: str | None = None) -> dict[str, bytes | None]:
        """Return key -> raw digest (None where not known yet) of the rows of ``table`` still delivered.

        ``then``: the table asked for next, whose digests the store may read meanwhile.
        """

    def has_rows(self, table: str) -> bool:
        """Whether the snapshot holds any row of ``table``, deleted ones included."""

    def delete_snapshot_rows(self, table: str, keys: Sequence[str]) -> None:
        """Remove these rows of ``table`` from the snapshot (rows this import stored and must not keep)."""

    def echo_keys(self, entity: str) -> set[str]:
        """Return the keys of the records of ``entity`` that have an echo mark."""

    def refresh_raw_hashes(self, import_id: int, table: str) -> int:
        """Store the raw digest of staged rows whose values are the same as the snapshot's but not their text."""

    def mark_deleted(self, import_id: int, table: str, keys: Sequence[str]) -> int:
        """Mark these rows of ``table`` as no longer delivered (by ``import_id``); return how many."""

    def insert_snapshot(self, table: str, import_id: int, rows: Sequence[Candidate]) -> None:
        """Add rows never delivered before."""

    def insert_new(self, table: str, import_id: int, rows: Sequence[tuple[str, str, str, bytes | None]]) -> None:
        """Add rows never delivered before, each as (key, JSON text of its values, hash, raw digest).

        What :meth:`insert_snapshot` does, for the rows of a table the snapshot never held,
        without a :class:`Candidate` a row; the values come as the text the snapshot stores
        (:func:`syncbridge.deliveries.row_text`), encoded once for their hash and their storing.
        """

    def update_snapshot(self, table: str, import_id: int, rows: Sequence[Candidate]) -> None:
        """Store the delivered values of known rows, changed by ``import_id``."""

    def add_deltas(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append deltas (import_id, entity, change, key, changed_fields, echoed_fields) to the outbox, in order."""

    def add_created(self, import_id: int, entity: str, keys: Sequence[str]) -> None:
        """Append a "created" delta of ``entity`` without changed or echoed fields for each key, in order."""

    def consume_echoes(self, entity: str, keys: Sequence[str]) -> None:
        """Forget echo marks a delivery left nothing to recognise of."""

    def narrow_echoes(self, entity: str, marks: dict[str, dict[str, Any]]) -> None:
        """Keep only these columns of echo marks (key -> the columns still to recognise)."""


class DailyUpStore(Protocol):
    """What the importer needs of the DailyUp store (``syncbridge.adapters.db.dailyup.SqlDailyUpStore``)."""

    def get_import(self, import_id: int) -> DailyUpImport | None:
        """Return one import by its id."""

    def record_rejected(self, *, file_name: str, sha256: str, hauptvermittler: str | None,
                        delivered_on: date | None, source: str, message: str, **counts: Any) -> int:
        """Record a delivery as rejected, in a transaction of its own; an import that was kept stays as it is."""

    def session(self, *, dry_run: bool = False) -> AbstractContextManager[ImportSession]:
        """Open one import's transaction: committed at the end, rolled back on an error or for a dry run."""

    def unpublished_deltas(self, limit: int, after: int = 0) -> list[PendingDelta]:
        """Return the oldest deltas not yet published (of ids above ``after``), in id order."""

    def count_unpublished(self) -> int:
        """Return how many deltas wait in the outbox."""

    def mark_published(self, ids: Iterable[int], *, settle: bool = True) -> None:
        """Mark deltas as published; an accepted import whose outbox is now empty becomes "published".

        With ``settle=False`` only the deltas are marked; the imports follow at the next call that settles.
        """


# ---------------------------------------------------------------- publishing (implemented by producers)
class Exchange(Protocol):
    @property
    def name(self) -> str: ...


class BoundQueue(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def routing_key(self) -> str: ...


class Topology(Protocol):
    """The exchanges and work queues the core names (``producers.topology.Topology``)."""

    @property
    def namespace(self) -> str: ...

    @property
    def events(self) -> Exchange: ...

    @property
    def dead(self) -> Exchange: ...

    @property
    def crm_to_ameise(self) -> BoundQueue: ...

    @property
    def ameise_to_crm(self) -> BoundQueue: ...

    @property
    def deltas(self) -> Exchange: ...

    def crm_exchange(self, *routing_keys: str) -> Exchange:
        """Where CRM record events of these routing keys are published (one exchange for all of them)."""


class Publisher(Protocol):
    """Publishes with broker confirms (``producers.publisher.Publisher``); an ``Unavailable`` when unconfirmed."""

    def publish(self, exchange: Any, routing_key: str, body: Mapping[str, Any] | bytes, *, message_id: str,
                headers: dict[str, Any] | None = None, content_type: str = ...) -> None:
        """Publish one message and wait for the broker's confirm."""

    def publish_many(self, exchange: Any, messages: Iterable[tuple[str, Mapping[str, Any], str]], *,
                     window: int = ...) -> int:
        """Publish (routing key, body, message id) in order, confirmed; the error carries ``confirmed``.

        ``window``: how many messages are sent before their confirms are awaited.
        """


# ---------------------------------------------------------------- dead letters
class DeadLetterKind(StrEnum):
    """Why a message is dead: header ``x-error-kind`` (ours) or RabbitMQ's reason; stored as its plain string."""

    # Given by our consumers and producers:
    CONTRACT_VIOLATION = "contract-violation"  # the message failed its (marshmallow) contract
    UNDECODABLE = "undecodable"    # not JSON, or a content type we never accept
    REJECTED = "rejected"          # Zoho/Ameise or our own rules refused the record
    ERROR = "error"                # an unexpected error of ours; replay after the fix
    UNAVAILABLE = "unavailable"    # the system stayed unavailable through every retry
    # Given by RabbitMQ (the reason of its x-death header):
    DELIVERY_LIMIT = "delivery_limit"
    EXPIRED = "expired"
    MAXLEN = "maxlen"
    NACKED = "nacked"              # RabbitMQ's reason "rejected": a consumer rejected it without requeue
    UNKNOWN = "unknown"            # neither our headers nor RabbitMQ's

    @classmethod
    def _missing_(cls, value: object) -> DeadLetterKind | None:
        """Read an older name as the kind it is now (dead letters archived before, their headers)."""
        return _OLDER_KIND_NAMES.get(str(value))

    @property
    def names(self) -> tuple[str, ...]:
        """Every value a stored dead letter of this kind may have: its own and older names."""
        return (self.value, *(old for old, kind in _OLDER_KIND_NAMES.items() if kind is self))


# A contract failure was once stored and sent as "contract": it still reads as one.
_OLDER_KIND_NAMES = {"contract": DeadLetterKind.CONTRACT_VIOLATION}


def dead_letter_kind(value: str) -> str:
    """The kind ``value`` names (an older name read as the new one); a value no kind has, unchanged."""
    try:
        return DeadLetterKind(value)
    except ValueError:
        return value


def dead_letter_kind_names(value: str) -> tuple[str, ...]:
    """The stored values that match a filter for kind ``value`` (the kind's own and older names)."""
    try:
        return DeadLetterKind(value).names
    except ValueError:
        return (value,)


CONTRACT_VIOLATION = DeadLetterKind.CONTRACT_VIOLATION
UNDECODABLE = DeadLetterKind.UNDECODABLE
REJECTED = DeadLetterKind.REJECTED
ERROR = DeadLetterKind.ERROR
UNAVAILABLE = DeadLetterKind.UNAVAILABLE

MAX_REASON = 2000

# States of an archived dead letter.
DEAD = "dead"
REPLAYED = "replayed"
DISCARDED = "discarded"
STATES = (DEAD, REPLAYED, DISCARDED)


def dead_letter_headers(headers: Mapping[str, Any] | None, exchange: str, routing_key: str, reason: str,
                        kind: DeadLetterKind) -> dict[str, Any]:
    """The headers of a message sent to the dead letters: where it was going, why, since when, how often."""
    result = dict(headers or {})
    now = datetime.now(UTC).isoformat()
    reason = reason[:MAX_REASON]
    result.update({
        "x-original-exchange": exchange,
        "x-original-routing-key": routing_key,
        "x-error-kind": str(kind),
        "x-error": reason,
        "x-first-error": result.get("x-first-error") or reason,
        "x-first-failed-at": result.get("x-first-failed-at") or now,
        "x-dead-lettered-at": now,
        "x-attempts": int(result.get("x-attempts") or 0) + 1,
    })
    return result


@dataclass(frozen=True)
class DeadLetter:
    """One archived dead letter: the message as it was, why it died, and what ops did with it."""

    fingerprint: str
    queue: str                          # work queue it came from (crm-to-ameise, ameise-to-crm) or "unknown"
    kind: str                           # a DeadLetterKind (or a value none has, kept as it came)
    record: str | None                  # Zoho record id, Kundennummer or Vertragsnummer
    exchange: str                       # original exchange and routing key
    routing_key: str
    message_id: str | None
    content_type: str
    headers: dict[str, Any]
    body: bytes
    reason: str                         # the last error
    first_error: str | None
    attempts: int | None
    first_failed_at: datetime | None
    dead_lettered_at: datetime
    # Set by the store:
    id: int | None = None
    state: str = DEAD
    archived_at: datetime | None = None
    replays: int = 0
    replayed_by: str | None = None
    replayed_at: datetime | None = None
    replay_error: str | None = None
    discarded_by: str | None = None
    discarded_at: datetime | None = None
    note: str | None = None
    cause: str | None = None            # what failed, for grouping into issues (dead_letter_cause)
    corrected_body: bytes | None = None  # an operator's correction, replayed instead of ``body`` (kept as it came)
    corrected_by: str | None = None
    corrected_at: datetime | None = None

    @property
    def replay_body(self) -> bytes:
        """What a replay publishes: the correction if there is one, else the message as it came."""
        return self.body if self.corrected_body is None else self.corrected_body


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters to list or act on; every given field must match."""

    queue: str | None = None
    kind: str | None = None
    record: str | None = None
    since: datetime | None = None       # dead-lettered at or after (inclusive)
    until: datetime | None = None       # dead-lettered before (exclusive)
    state: str | None = None
    text: str | None = None             # contained (any case) in the reason, record, routing key or message id
    cause: str | None = None            # one issue's dead letters

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in dataclasses.fields(self))


class LetterChange(Protocol):
    """The changes of one locked dead letter, inside its transaction."""

    letter: DeadLetter

    def replayed(self, by: str) -> DeadLetter:
        """Mark it replayed (once more) by ``by``, now."""

    def discarded(self, by: str, note: str | None) -> DeadLetter:
        """Mark it discarded by ``by``, now, with an optional note."""

    def refused(self, reason: str) -> DeadLetter:
        """Note why a replay was refused; the dead letter stays as it is."""

    def corrected(self, body: bytes, by: str) -> DeadLetter:
        """Keep ``body`` as the correction a replay publishes (the original stays), by ``by``, now."""


class DeadLetterStore(Protocol):
    """The archive of dead letters (``syncbridge.adapters.db.dead_letters.SqlDeadLetterStore``)."""

    def archive(self, letter: DeadLetter) -> int:
        """Store a dead letter unless one with its fingerprint is stored already; return the row's id."""

    def get(self, letter_id: int) -> DeadLetter | None:
        """One dead letter by its id."""

    def find(self, flt: DeadLetterFilter = ..., *, limit: int = 100) -> list[DeadLetter]:
        """The dead letters ``flt`` matches, newest first."""

    def count(self, flt: DeadLetterFilter = ...) -> int:
        """How many dead letters ``flt`` matches."""

    def ids(self, flt: DeadLetterFilter, *, after: int = 0, limit: int = 500) -> list[int]:
        """The ids ``flt`` matches above ``after``, in id order."""

    def change(self, letter_id: int) -> AbstractContextManager[LetterChange | None]:
        """Lock one dead letter for a change (None if there is none): committed at the end."""


# ---------------------------------------------------------------- operators of the dashboard
# Roles, lowest first: a viewer reads, an operator acts on the sync, an admin also manages users.
ROLES = ("viewer", "operator", "admin")


@dataclass(frozen=True)
class Operator:
    """A person who may sign in to the dashboard (the password only as its hash)."""

    id: int
    username: str
    role: str                           # one of ROLES
    password_hash: str
    created_at: datetime
    password_changed_at: datetime


@dataclass(frozen=True)
class AuditEntry:
    """One operator action: who did what to which thing, and when."""

    actor: str                          # a username, or "cli:<system user>"
    action: str                         # user.created, user.role_changed, direction.paused, ...
    target: str = ""                    # what it acted on (a username, a direction, a dead-letter id)
    details: dict[str, Any] = field(default_factory=dict)
    at: datetime | None = None          # set by the store when None
    id: int | None = None               # set by the store


@dataclass(frozen=True)
class DirectionPause:
    """A direction paused by an operator: who, when and why."""

    direction: str                      # a Direction (crm_to_ameise, ameise_to_crm)
    by: str
    reason: str
    at: datetime


class OperatorStore(Protocol):
    """Users, their audit log, failed sign-ins and pause flags (``syncbridge.adapters.db.operators``)."""

    def add_operator(self, username: str, role: str, password_hash: str) -> Operator:
        """Create an operator; ValueError when the username is taken."""

    def operator(self, username: str) -> Operator | None:
        """An operator by username (case as stored)."""

    def operator_by_id(self, operator_id: int) -> Operator | None:
        """An operator by id."""

    def operators(self) -> list[Operator]:
        """Every operator, by username."""

    def update_operator(self, username: str, *, role: str | None = None, password_hash: str | None = None) -> Operator:
        """Change role and/or password hash; KeyError when there is no such operator."""

    def delete_operator(self, username: str) -> bool:
        """Delete an operator; whether there was one."""

    def count_admins(self) -> int:
        """How many operators have the admin role."""

    def audit(self, entry: AuditEntry) -> AuditEntry:
        """Append to the audit log; returns the entry with id and time."""

    def audit_entries(self, *, before_id: int | None = None, limit: int = 50) -> list[AuditEntry]:
        """Audit entries newest first, those with an id below ``before_id`` when given."""

    def note_failed_login(self, keys: Sequence[str], at: datetime) -> None:
        """Note one failed sign-in under each key (an account's and a client address's, hashed)."""

    def failed_logins(self, key: str, since: datetime) -> int:
        """How many failed sign-ins under ``key`` at or after ``since``."""

    def clear_failed_logins(self, key: str) -> None:
        """Forget the failed sign-ins under ``key`` (after a successful one)."""

    def prune_failed_logins(self, before: datetime) -> int:
        """Forget failed sign-ins older than ``before``; how many."""

    def pause_direction(self, pause: DirectionPause) -> None:
        """Set the pause flag of a direction (replacing an earlier one)."""

    def resume_direction(self, direction: str) -> bool:
        """Clear the pause flag of a direction; whether it was set."""

    def paused_directions(self) -> dict[str, DirectionPause]:
        """The pause flags that are set, by direction."""


# ---------------------------------------------------------------- issues and bulk jobs of the dashboard
def dead_letter_cause(kind: str, reason: str) -> str:
    """The cause a dead letter is grouped under: its kind, and the system, code and field of its error.

    ``reason`` is written by ``SyncError.describe`` ("zoho 400 INVALID_DATA field=Email: ...");
    a reason of another form groups by its kind alone.  No message text: a cause holds no personal data.
    """
    found = _CAUSE.match(reason or "")
    if not found:
        return str(kind)[:32]
    system, code, field_ = found.group("system", "code", "field")
    return " ".join(part for part in (str(kind)[:32], system, code or "", f"field={field_}" if field_ else "")
                    if part)[:255]


_CAUSE = re.compile(r"^(?P<system>[a-z][a-z_-]{1,31})(?: \d{3})?(?: (?P<code>[A-Z][A-Z0-9_]{1,63}))?"
                    r"(?: field=(?P<field>[A-Za-z0-9_.$-]{1,100}))?: ")

OPEN, ACKNOWLEDGED, RESOLVED = "open", "acknowledged", "resolved"
ISSUE_STATES = (OPEN, ACKNOWLEDGED, RESOLVED)


@dataclass(frozen=True)
class Issue:
    """Dead letters of one cause: how many, since when, and what operators said of it."""

    cause: str
    count: int                          # dead letters of this cause, any state
    dead: int                           # of them still dead (to replay)
    first_seen: datetime
    last_seen: datetime
    state: str = OPEN                   # as an operator set it (a resolved one that recurs reads as open)
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None


class IssueStore(Protocol):
    """Dead letters grouped by cause, with the state operators gave each (``syncbridge.adapters.db.issues``)."""

    def issues(self, *, limit: int = 200) -> list[Issue]:
        """Every cause with dead letters, the most recently seen first."""

    def issue(self, cause: str) -> Issue | None:
        """One cause, or None when no dead letter has it."""

    def set_issue_state(self, cause: str, state: str, by: str, at: datetime) -> None:
        """Note that ``by`` set the cause's state at ``at``."""


# States of a background job.
QUEUED, RUNNING, DONE, CANCELLED, FAILED_JOB, INTERRUPTED = "queued", "running", "done", "cancelled", "failed", \
    "interrupted"
JOB_STATES = (QUEUED, RUNNING, DONE, CANCELLED, FAILED_JOB, INTERRUPTED)
FINISHED_JOB_STATES = (DONE, CANCELLED, FAILED_JOB, INTERRUPTED)


@dataclass(frozen=True)
class Job:
    """A bulk action run in the background: what, by whom, how far, whether to stop."""

    id: int
    action: str                         # replay, discard
    params: dict[str, Any]              # the filter it acts on, as text
    state: str
    created_by: str
    created_at: datetime
    total: int = 0
    done: int = 0
    succeeded: int = 0
    failed: int = 0
    cancel_requested: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None  # the runner's last sign of life
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_JOB_STATES


class JobStore(Protocol):
    """The background jobs' table (``syncbridge.adapters.db.issues.SqlJobStore``)."""

    def create_job(self, action: str, params: dict[str, Any], *, by: str, total: int, at: datetime) -> Job:
        """A new queued job."""

    def job(self, job_id: int) -> Job | None:
        """One job."""

    def jobs(self, *, limit: int = 20) -> list[Job]:
        """The newest jobs first."""

    def update_job(self, job_id: int, **values: Any) -> None:
        """Set state, progress, times or error of a job."""

    def request_cancel(self, job_id: int) -> bool:
        """Ask a running or queued job to stop; whether it was still unfinished."""

    def interrupt_stale(self, before: datetime, at: datetime) -> int:
        """Mark unfinished jobs without a sign of life since ``before`` (their process ended) interrupted."""


class ImportHistory(Protocol):
    """The DailyUp imports as the status pages read them (``SqlDailyUpStore.imports``)."""

    def imports(self, limit: int = 20) -> list[DailyUpImport]:
        """The newest imports first."""

    def get_import(self, import_id: int) -> DailyUpImport | None:
        """One import by its id."""

    def row_errors(self, import_id: int, limit: int | None = None) -> list[Any]:
        """The stored row errors (``syncbridge.deliveries.RowError``) of an import, in the order they were found."""


# ---------------------------------------------------------------- statistics of the activity log
@dataclass(frozen=True)
class ActivityCount:
    """How many activity log entries of one kind one day (UTC) had."""

    day: date
    direction: str
    entity: str | None
    action: str
    result: str
    count: int


class ActivityStatistics(Protocol):
    """Counts of the activity log per day (``SqlStore``, ``MemoryStore``)."""

    def activity_counts(self, *, since: datetime, until: datetime) -> list[ActivityCount]:
        """Entries at or after ``since`` and before ``until``, counted per UTC day, direction, entity, action, result."""


# ---------------------------------------------------------------- Zoho API credits
# Why a Zoho call was made: event-driven syncs keep priority over the bulk work.
SYNC_PURPOSE, BACKFILL_PURPOSE, SWEEP_PURPOSE, LINK_PURPOSE, CHECK_PURPOSE = "sync", "backfill", "sweep", "link", "check"
CREDIT_PURPOSES = (SYNC_PURPOSE, BACKFILL_PURPOSE, SWEEP_PURPOSE, LINK_PURPOSE, CHECK_PURPOSE)


@dataclass(frozen=True)
class CreditUse:
    """The API credits one Zoho call cost: 1 per call, insert/update/upsert 1 per 10 records."""

    call: str                           # get_record, list_records, search, upsert, update, insert, delete, ...
    credits: int
    purpose: str = SYNC_PURPOSE         # one of CREDIT_PURPOSES
    records: int = 0                    # records written or read by the call
    at: datetime | None = None          # set by the ledger when None
    calls: int = 1                      # calls of one minute, type and purpose noted at once (summed)


@dataclass(frozen=True)
class CreditTotal:
    """Credits and calls of one call type and purpose in a window."""

    call: str
    purpose: str
    credits: int
    calls: int


class CreditLedger(Protocol):
    """The Zoho API credits spent, kept per rolling 24 h (``syncbridge.adapters.db.credits``)."""

    def spend(self, use: CreditUse) -> None:
        """Note one call's credits."""

    def spend_many(self, uses: Sequence[CreditUse]) -> None:
        """Note several uses at once (in one transaction where the ledger has them)."""

    def used(self, since: datetime, *, purposes: tuple[str, ...] | None = None) -> int:
        """Credits spent at or after ``since`` (by ``purposes`` only, when given)."""

    def totals(self, since: datetime) -> list[CreditTotal]:
        """Credits and calls at or after ``since`` per call type and purpose, the most credits first."""


# ---------------------------------------------------------------- catch-up sweep and backfill
@dataclass(frozen=True)
class RecordPage:
    """One page of a module's records; ``next_cursor`` (a page number or Zoho's page token) reads the next one."""

    records: list[dict[str, Any]]
    next_cursor: str | None = None


@dataclass(frozen=True)
class BackfillProgress:
    """How far the backfill of one module got: the cursor of the next page, records queued, finished."""

    module: str
    cursor: str | None = None
    queued: int = 0
    pages: int = 0
    finished: bool = False
    started_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class DeletedCrmRecord:
    """A record deleted in the CRM, as the sweep saw it (``/{module}/deleted`` or a delete event)."""

    module: str
    record_id: str
    deleted_at: datetime | None
    seen_at: datetime
    name: str = ""          # Zoho's display name; shown to operators, never logged
    source: str = "sweep"


class SweepState(Protocol):
    """What the sweep and the backfill keep (``syncbridge.adapters.db.sweep``): leases, watermarks, cursors, deletes."""

    def take_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take (or extend, when ``owner`` holds it) the lease ``name`` unless another owner holds an unexpired one."""

    def release_lease(self, name: str, owner: str) -> None:
        """Give the lease up, when ``owner`` holds it."""

    def lease_holder(self, name: str) -> tuple[str, datetime] | None:
        """The owner of an unexpired lease and its expiry, else None."""

    def watermark(self, module: str) -> datetime | None:
        """Up to when every change of ``module`` is queued."""

    def set_watermark(self, module: str, at: datetime) -> None:
        """Move the watermark of ``module`` (never back)."""

    def backfill(self, module: str) -> BackfillProgress | None:
        """The backfill of ``module`` so far, None when none was started."""

    def save_backfill(self, progress: BackfillProgress) -> None:
        """Note the backfill of one module: after each page that is queued."""

    def clear_backfill(self, module: str) -> None:
        """Forget the backfill of ``module`` (start again from the first page)."""

    def note_deleted(self, records: Sequence[DeletedCrmRecord]) -> int:
        """Remember records deleted in the CRM; return how many were not known before."""

    def deleted(self, *, module: str | None = None, limit: int = 100) -> list[DeletedCrmRecord]:
        """The deleted records seen, the most recently deleted first."""


def aware_time(value: Any) -> datetime | None:
    """A timestamp as Zoho writes it (ISO 8601 with an offset or ``Z``); None when absent, unreadable or naive."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def credit_minute(at: datetime) -> datetime:
    """The start of the UTC minute of ``at`` (timezone-aware): the ledgers keep credits per minute."""
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at!r}: pass a timezone-aware one")
    return at.astimezone(UTC).replace(second=0, microsecond=0)


# ---------------------------------------------------------------- first-time linking
CERTAIN, PROPOSED, AMBIGUOUS = "certain", "proposed", "ambiguous"
ACCEPTED, REJECTED_PROPOSAL, SUPERSEDED = "accepted", "rejected", "superseded"
OPEN_PROPOSAL_STATES = (CERTAIN, PROPOSED, AMBIGUOUS)
PROPOSAL_STATES = (*OPEN_PROPOSAL_STATES, ACCEPTED, REJECTED_PROPOSAL, SUPERSEDED)


@dataclass(frozen=True)
class LinkProposal:
    """A CRM record and an Ameise customer or contract that may be one, with the score and its reasons."""

    entity: str                     # customer or contract
    kind: str                       # person, company, contract
    ameise_key: str                 # Kundennummer or Vertragsnummer
    zoho_module: str
    zoho_id: str
    score: int                      # 0-100
    reasons: tuple[str, ...]
    status: str                     # certain, proposed, ambiguous; accepted, rejected, superseded
    ameise_label: str = ""          # what a person recognises the records by (names, dates)
    crm_label: str = ""
    crm_number: str = ""            # the number the CRM record carries already ('' for none)
    id: int | None = None
    run_id: int | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None


@dataclass(frozen=True)
class LinkRun:
    """One `syncbridge link propose`: when, by whom, and how many of each."""

    id: int
    started_at: datetime
    started_by: str
    counts: dict[str, int]


class LinkingStore(Protocol):
    """The proposals of first-time linking, and the DailyUp snapshot they are computed from."""

    def snapshot_records(self, table: str) -> Iterator[SnapshotRow]:
        """Every not-deleted row of a DailyUp snapshot table (kunden, vertraege), by key."""

    def record_run(self, *, by: str, at: datetime, counts: dict[str, int],
                   proposals: Sequence[LinkProposal]) -> LinkRun:
        """Keep a run and its proposals; the open proposals of earlier runs become superseded."""

    def last_run(self) -> LinkRun | None:
        """The newest run, or None before linking has run."""

    def proposals(self, *, statuses: Sequence[str] | None = None, after_id: int = 0,
                  limit: int | None = 100) -> list[LinkProposal]:
        """Proposals by id (ascending), of these statuses."""

    def proposal(self, proposal_id: int) -> LinkProposal | None: ...

    def decide(self, proposal_id: int, status: str, *, by: str, at: datetime) -> LinkProposal:
        """Accept or reject an open proposal; accepting supersedes the other open ones of either record."""

    def open_proposals_for(self, entity: str, ameise_key: str) -> list[LinkProposal]:
        """The open proposals naming this Kundennummer / Vertragsnummer."""

    def count_proposals(self) -> dict[str, int]:
        """Proposals per status."""
