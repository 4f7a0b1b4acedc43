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
    received_at: datetime | None = None   # when the event came in: a sync begun later covers it
    operation: str | None = None          # what the CRM said happened (create, edit, delete), when it said so


# Return path (Ameise -> CRM).  A delta message carries ids and small facts; the
# record's values are read from the service's DailyUp snapshot when it is applied,
# so a later delivery's values win over an older, still queued delta.
CUSTOMER, CONTRACT = "customer", "contract"   # the entities of Ameise a message is about
ENTITIES = (CUSTOMER, CONTRACT)
CHANGES = ("created", "changed", "deleted")


@dataclass(frozen=True)
class AmeiseRecordChanged:
    """A DailyUp delivery showed a customer or contract created, changed or deleted in Ameise."""

    delta_id: str                       # "<import id>:<entity>:<key>", unique per delta
    import_id: int
    delivered_on: str                   # ISO date of the delivery
    entity: str                         # customer or contract
    change: str                         # created, changed or deleted
    key: str                            # Kundennummer or Vertragsnummer
    changed_fields: tuple[str, ...] = ()  # DailyUp columns, for "changed"
    echoed_fields: tuple[str, ...] = ()   # DailyUp columns delivered as the CRM -> Ameise direction wrote them


@dataclass(frozen=True)
class SyncAmeiseRecordsToCrm:
    """Apply a batch of DailyUp deltas to the CRM (Zoho upserts of up to 100 records)."""

    records: tuple[AmeiseRecordChanged, ...]


def crm_record_changed_key(module: str) -> str:
    """Routing key of a CRM record event of ``module``."""
    return f"crm.{module.lower()}.changed"


def ameise_record_changed_key(entity: str, change: str) -> str:
    """Routing key of a DailyUp delta: ``ameise.customer.created`` etc."""
    return f"ameise.{entity}.{change}"


# The DailyUp outbox sends its deltas several to a message, each settled on its own by
# the consumer (a delta retried or dead-lettered travels alone, under its own key).
AMEISE_DELTAS_KEY = "ameise.deltas"
DELTAS_PER_MESSAGE = 100    # as many as one Zoho upsert takes
