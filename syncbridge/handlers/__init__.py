"""The core's handlers: one per command, free of Flask, kombu and SQLAlchemy; one module per direction
and one for the operations on dead letters (:mod:`.dead_letters`).

:func:`sync_crm_record_to_ameise` reads one CRM record in full and creates or
updates it in Ameise, matched on the Kundennummer / Vertragsnummer the record
carries (or on the link the store remembers).  A record Ameise does not know is
created, and its new number is written back to the CRM with ``"trigger": []`` so
that the next event matches and no workflow loop starts.

:func:`sync_ameise_records_to_crm` applies a batch of DailyUp deltas to the CRM:
the values come from the DailyUp snapshot, and each CRM module gets one upsert
per 100 records, matched on the Kundennummer / Vertragsnummer.  A record the CRM
already has is not sent the values that merely came back from our own writes
(see :meth:`_ReturnBatch._prepare_upsert`).
"""
from syncbridge.handlers.ameise_to_crm import (
    OK,
    REJECTED,
    UNAVAILABLE,
    RecordOutcome,
    RecordStatus,
    ReturnDependencies,
    sync_ameise_records_to_crm,
)
from syncbridge.handlers.crm_to_ameise import SyncDependencies, SyncResult, sync_crm_record_to_ameise

__all__ = ["OK", "REJECTED", "UNAVAILABLE", "RecordOutcome", "RecordStatus", "ReturnDependencies", "SyncDependencies",
           "SyncResult", "sync_ameise_records_to_crm", "sync_crm_record_to_ameise"]
