"""Messages of the domain: events say what happened, commands what to do.

Handlers in :mod:`syncbridge.handlers` are named after the command they take.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class CrmRecordChanged:
    """A CRM record was created or changed (a webhook or notification said so)."""

    event_id: str
    source: str                 # zoho-workflow, zoho-notify, forms:<source>
    module: str                 # Zoho module API name, e.g. Contacts
    record_id: str              # Zoho record id: a digit string, never an int
    received_at: datetime
    operation: str | None = None
    modified_time: str | None = None


@dataclass(frozen=True)
class SyncCrmRecordToAmeise:
    """Read one CRM record in full and create or update it in Ameise."""

    module: str
    record_id: str
    event_id: str
