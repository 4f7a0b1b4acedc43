"""In-memory Zoho CRM client with the semantics of :class:`syncbridge.adapters.zoho.ZohoClient`.

It runs the simulator's own rules (:class:`simulators.zoho.ZohoState`) without HTTP:
digit-string ids, the typed field metadata every write is checked against (unknown
field, type, picklist value, length, MULTIPLE_OR_MULTI_ERRORS), mandatory fields,
per-record results, DUPLICATE_DATA on unique fields, the fields an upsert may match
on, get-records paging, lookups and search criteria behave as in the simulator, and
one parametrized test suite keeps the real client and this fake in step.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from simulators.zoho import CriteriaError, ZohoState
from simulators.zoho.state import MAX_PAGED_RECORDS, MAX_PER_PAGE
from syncbridge.adapters.zoho import MAX_RECORDS_PER_CALL, ZohoRejected, criteria_equals, crm_fields, record_result
from syncbridge.errors import ExternalServiceError
from syncbridge.ports import CrmField, RecordPage, RecordResult


@dataclass(frozen=True)
class WriteCall:
    """One insert / update / upsert / delete the code under test made."""

    operation: str                      # insert | update | upsert | delete (records: [{"id": ...}])
    module: str
    records: list[dict[str, Any]]
    duplicate_check_fields: list[str] = field(default_factory=list)


class InMemoryZoho:
    """A :class:`syncbridge.ports.CrmClient` over an in-memory :class:`ZohoState`."""

    # Arrange data through state (seed, set_unique_fields, user_update); inspect
    # records(module), writes, reads and state.credits_used.

    def __init__(self, state: ZohoState | None = None) -> None:
        self.state = state or ZohoState()
        self.writes: list[WriteCall] = []
        self.reads: list[tuple[str, str]] = []
        self._failures: list[ExternalServiceError] = []

    # ------------------------------------------------------------ test helpers
    def seed(self, module: str, fields: dict[str, Any]) -> str:
        """Store a record without any workflow; return its id."""
        return self.state.seed(module, fields)

    def records(self, module: str) -> list[dict[str, Any]]:
        """Copies of every record of ``module``, oldest first."""
        return self.state.records(module)

    def fail_next(self, error: ExternalServiceError, count: int = 1) -> None:
        """Make the next ``count`` calls raise ``error`` (e.g. a ZohoUnavailable)."""
        self._failures.extend([error] * count)

    def _enter(self, module: str, credits: int = 1) -> None:
        if self._failures:
            raise self._failures.pop(0)
        if not self.state.has_module(module):
            raise ZohoRejected(f"{module}: the module name given seems to be invalid", status=400,
                               code="INVALID_MODULE", body={"code": "INVALID_MODULE", "details": {}, "status": "error"})
        self.state.charge(credits)

    # ------------------------------------------------------------ CrmClient
    def get_record(self, module: str, record_id: str) -> dict[str, Any] | None:
        self._enter(module)
        self.reads.append((module, record_id))
        return self.state.get(module, str(record_id))

    def insert_records(self, module: str, records: Sequence[dict[str, Any]]) -> list[RecordResult]:
        return self._write("insert", module, records, None)

    def update_records(self, module: str, records: Sequence[dict[str, Any]]) -> list[RecordResult]:
        return self._write("update", module, records, None)

    def upsert_records(
        self, module: str, records: Sequence[dict[str, Any]], duplicate_check_fields: Sequence[str]
    ) -> list[RecordResult]:
        return self._write("upsert", module, records, list(duplicate_check_fields))

    def _write(self, operation: str, module: str, records: Sequence[dict[str, Any]],
               check_fields: list[str] | None) -> list[RecordResult]:
        records = copy.deepcopy(list(records))
        if len(records) > MAX_RECORDS_PER_CALL:
            raise ValueError(f"Zoho takes at most {MAX_RECORDS_PER_CALL} records per call, got {len(records)}")
        if not records:
            return []
        self._enter(module, max(1, math.ceil(len(records) / 10)))
        refused = self.state.duplicate_check_problem(module, check_fields) if operation == "upsert" else None
        if refused is not None:
            raise ZohoRejected(f"POST {module}/upsert: {refused['message']}", status=400, code=refused["code"],
                               field=refused["details"]["api_name"], body=refused)
        self.writes.append(WriteCall(operation, module, copy.deepcopy(records), check_fields or []))
        # like the real client, every write carries "trigger": [] -- no workflow rule fires
        results = self.state.write(module, operation, records, duplicate_check_fields=check_fields or None,
                                   workflow=False)
        return [record_result(item, None if operation == "upsert" else operation) for item in results]

    def delete_records(self, module: str, record_ids: Sequence[str]) -> list[RecordResult]:
        ids = [str(record_id) for record_id in record_ids]
        if len(ids) > MAX_RECORDS_PER_CALL:
            raise ValueError(f"Zoho deletes at most {MAX_RECORDS_PER_CALL} records per call, got {len(ids)}")
        if not ids:
            return []
        self._enter(module)
        self.writes.append(WriteCall("delete", module, [{"id": i} for i in ids]))
        return [record_result(item, "delete") for item in self.state.delete(module, ids)]

    def find_records_by_field(self, module: str, field: str, value: Any) -> list[dict[str, Any]]:
        return self.search_records(module, criteria_equals(field, value))

    def search_records(self, module: str, criteria: str) -> list[dict[str, Any]]:
        self._enter(module)
        try:
            return self.state.search(module, criteria=criteria)
        except CriteriaError as exc:
            raise ZohoRejected(f"search {module}: invalid query formed", status=400, code="INVALID_QUERY",
                               body={"code": "INVALID_QUERY", "details": {"reason": str(exc)}}) from exc

    def field_metadata(self, module: str) -> list[CrmField]:
        self._enter(module)
        return crm_fields(module, {"fields": self.state.fields(module)})

    def list_records(self, module: str, fields: Sequence[str], *,
                     modified_since: datetime | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page, token = 1, None
        while True:
            self._enter(module)
            status, body = self.state.list_page(module, list(fields), page=page, page_token=token,
                                                modified_since=modified_since)
            if status in (204, 304) or body is None:
                return found
            if status != 200:
                raise ZohoRejected(f"list {module}: {body['message']}", status=status, code=body["code"], body=body)
            found.extend(body["data"])
            info = body["info"]
            if not info["more_records"]:
                return found
            # like the client: page numbers for the first 2,000 records, then the page token
            if token is not None or len(found) + MAX_PER_PAGE > MAX_PAGED_RECORDS:
                token = info["next_page_token"]
            else:
                page += 1

    def deleted_records(self, module: str, kind: str = "all") -> list[dict[str, Any]]:
        self._enter(module)
        return self.state.deleted(module, kind)

    def records_page(self, module: str, fields: Sequence[str], *, cursor: str | None = None,
                     modified_since: datetime | None = None) -> RecordPage:
        kind, _, value = (cursor or "page:1").partition(":")
        if not ((kind == "token" and value) or (kind == "page" and value.isdigit() and int(value) >= 1)):
            raise ValueError(f"not a cursor of list {module}: {cursor!r}")
        self._enter(module)
        page = int(value) if kind == "page" else 1
        status, body = self.state.list_page(module, list(fields), page=page,
                                            page_token=value if kind == "token" else None,
                                            modified_since=modified_since)
        if status in (204, 304) or body is None:
            return RecordPage([], None)
        if status != 200:
            raise ZohoRejected(f"list {module}: {body['message']}", status=status, code=body["code"], body=body)
        info = body["info"]
        if not info["more_records"]:
            return RecordPage(body["data"], None)
        if kind == "page" and (page + 1) * MAX_PER_PAGE <= MAX_PAGED_RECORDS:
            return RecordPage(body["data"], f"page:{page + 1}")
        return RecordPage(body["data"], f"token:{info['next_page_token']}")

    def webhook_failures(self, since: datetime | None = None) -> list[dict[str, Any]]:
        if self._failures:
            raise self._failures.pop(0)
        self.state.charge(1)
        items = self.state.webhook_failure_items()
        if since is None:
            return items
        return [i for i in items if datetime.fromisoformat(i["failure_time"]) >= since]
