"""The ports: the small interfaces through which the core talks to the world.

The core (``syncbridge.handlers``, ``syncbridge.dailyup``, ``syncbridge.mapping``)
imports only these.  Real implementations live in ``syncbridge.adapters``
(:mod:`~syncbridge.adapters.zoho`, :mod:`~syncbridge.adapters.ameise`, the SQL
store in :mod:`~syncbridge.adapters.db`); in-memory ones for fast tests and the
demo in ``simulators.fakes``; publishing is ``producers``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


# ---------------------------------------------------------------- outside systems
@dataclass(frozen=True)
class RecordResult:
    """The outcome of one record of a Zoho insert / update / upsert / delete, in request order."""

    ok: bool
    code: str                      # SUCCESS, MANDATORY_NOT_FOUND, DUPLICATE_DATA, INVALID_DATA, ...
    message: str = ""
    action: str | None = None      # "insert", "update" or "delete" on success
    record_id: str | None = None   # details.id on success
    field: str | None = None       # details.api_name on a per-record error
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


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

    def search_records(self, module: str, criteria: str) -> list[dict[str, Any]]:
        """Records matching a criteria string such as ``(Kundennummer:equals:5001234567)``."""


class AmeiseClient(Protocol):
    """Ameise employee web service (Dionera), for one connected employee."""

    def get_customer(self, kundennummer: str) -> dict[str, Any] | None:
        """The customer, or None when Ameise does not know the number."""

    def create_customer(self, data: dict[str, Any]) -> str:
        """Create a customer; return the new Kundennummer."""

    def update_customer(self, kundennummer: str, data: dict[str, Any]) -> None:
        """Update a customer."""

    def search_customers(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """Customers matching a search body such as ``{"mail": "a@b.de"}``."""

    def customer_contracts(self, kundennummer: str) -> list[dict[str, Any]]:
        """The contracts of a customer; empty when Ameise knows none."""

    def get_contract(self, vertragsnummer: str) -> dict[str, Any] | None:
        """The contract, or None when Ameise does not know the number."""

    def create_contract(self, data: dict[str, Any]) -> str:
        """Create a contract; return the new Vertragsnummer."""

    def update_contract(self, vertragsnummer: str, data: dict[str, Any]) -> None:
        """Update a contract with a partial body."""


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


# ---------------------------------------------------------------- the store
# Directions of the activity log.
CRM_TO_AMEISE = "crm_to_ameise"
AMEISE_TO_CRM = "ameise_to_crm"
SYSTEM = "system"


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

    direction: str                  # CRM_TO_AMEISE, AMEISE_TO_CRM, SYSTEM
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
    """The last delivered state of one DailyUp row (normalized values, see syncbridge.dailyup.model)."""

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
