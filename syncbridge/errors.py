"""One tree of failures, for the clients of outside systems and for the core.

Business code decides on two kinds alone: *try again later* or *dead-letter*::

    SyncError                          (alias ExternalServiceError)
    ├── Unavailable                    try again later (retry_after in seconds when known)
    │   ├── ReconnectNeeded            the OAuth grant is gone: a person must reconnect; messages wait
    │   │   ├── ZohoReconnectNeeded
    │   │   └── AmeiseReconnectNeeded
    │   ├── RecordBusy                 another worker holds the record's lock for longer than we wait
    │   ├── RecordNotReady             the record must wait (a contract's customer is not in the CRM yet)
    │   ├── SchemaOutdated             our database is behind the code: the release step has not run
    │   ├── ZohoUnavailable            timeouts, connection errors, 5xx, 429
    │   └── AmeiseUnavailable
    ├── Rejected                       retrying will not help: dead-letter
    │   ├── RecordRejected             the record cannot be synced as it is (our rules, a CRM conflict)
    │   ├── ZohoRejected               4xx, invalid data
    │   └── AmeiseRejected
    ├── ZohoError                      base of the Zoho client's errors (each is also one of the two kinds)
    └── AmeiseError                    base of the Ameise client's errors

Each client defines one base error with an *unavailable* and a *rejected* child
(e.g. ``ZohoUnavailable(ZohoError, Unavailable)``), and raises only those.
"""
from __future__ import annotations

from typing import Any


class SyncError(Exception):
    """Root of every failure the core decides on: an outside system's or its own."""

    system = "external"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        field: str | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field
        self.body = body
        self.retry_after = retry_after

    def describe(self) -> str:
        """One line for logs and dead letters: system, status, code, field, message."""
        parts = [self.system]
        if self.status is not None:
            parts.append(str(self.status))
        if self.code:
            parts.append(self.code)
        if self.field:
            parts.append(f"field={self.field}")
        return " ".join(parts) + f": {self.message}"


ExternalServiceError = SyncError
"""The root under its older name: the base the clients of outside systems derive from."""


class Unavailable(SyncError):
    """The system could not be reached or asked us to come back later."""


class Rejected(SyncError):
    """The system refused the request; sending it again will not help."""


class ReconnectNeeded(Unavailable):
    """The OAuth grant is no longer valid; a person must reconnect."""


class RecordBusy(Unavailable):
    """Another worker has been syncing the same record for longer than we wait: try again later."""

    system = "syncbridge"


class RecordRejected(Rejected):
    """The record cannot be synced as it is (our rules refuse it); retrying will not help."""

    system = "syncbridge"


class RecordNotReady(Unavailable):
    """The record cannot be applied yet (e.g. a contract whose customer is not in the CRM yet): try again later."""

    system = "syncbridge"


class StoreUnavailable(Unavailable):
    """The service's own database could not be reached (refused, too many clients, connection lost): try again later."""

    system = "database"


class SchemaOutdated(Unavailable):
    """The service's database is behind the code's migrations: run ``syncbridge db upgrade`` (the release step)."""

    system = "syncbridge"
