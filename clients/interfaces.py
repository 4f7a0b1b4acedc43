"""The interfaces business code uses for the outside systems and their tokens.

Real implementations: :mod:`clients.zoho`, :mod:`clients.ameise`; in-memory ones
for fast tests: :mod:`clients.fakes`.  Business code imports only this module.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol, Sequence


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
