"""Business handlers: one per command, free of Flask and kombu.

:func:`sync_crm_record_to_ameise` reads one CRM record in full and creates or
updates it in Ameise, matched on the Kundennummer / Vertragsnummer the record
carries (or on the link the store remembers).  A record Ameise does not know is
created, and its new number is written back to the CRM with ``"trigger": []`` so
that the next event matches and no workflow loop starts.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from clients.interfaces import AmeiseClient, CrmClient
from store.interfaces import CRM_TO_AMEISE, ActivityEntry, LinkConflict, Store
from syncbridge.mapping import FieldValueError, Mapping
from syncbridge.messages import SyncCrmRecordToAmeise

log = logging.getLogger(__name__)

CUSTOMER = "customer"
CONTRACT = "contract"


class SyncRejected(Exception):
    """The record cannot be synced as it is; retrying will not help (dead-letter it)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def describe(self) -> str:
        return f"syncbridge: {self}" if not self.field else f"syncbridge field={self.field}: {self}"


@dataclass(frozen=True)
class SyncResult:
    """What a sync did: created, updated, skipped (record gone) or duplicate (event seen before)."""

    action: str
    entity: str | None
    module: str
    zoho_id: str
    ameise_id: str | None = None
    written_back: bool = False


@dataclass
class SyncDependencies:
    """What the CRM -> Ameise handler needs, built by :mod:`syncbridge.bootstrap`."""

    crm: CrmClient
    ameise: AmeiseClient
    store: Store
    mapping: Mapping
    module_entities: dict[str, str]          # CRM module -> person | company | contract
    kundennummer_field: str = "Kundennummer"
    vertragsnummer_field: str = "Vertragsnummer"
    default_vermittler: str = ""


def sync_crm_record_to_ameise(command: SyncCrmRecordToAmeise, deps: SyncDependencies) -> SyncResult:
    """Create or update the CRM record of ``command`` in Ameise; idempotent per event."""
    module, record_id = command.module, command.record_id
    if deps.store.was_processed(command.event_id):
        log.info("event %s already processed; nothing to do", command.event_id)
        return SyncResult("duplicate", None, module, record_id)
    kind = deps.module_entities.get(module)
    if kind is None:
        raise SyncRejected(f"CRM module {module!r} is not synced (SYNCBRIDGE_ZOHO_MODULES)")

    record = deps.crm.get_record(module, record_id)
    if record is None:
        entity = CONTRACT if kind == CONTRACT else CUSTOMER
        deps.store.log(_entry("skipped", "ok", entity, module, record_id, None, command.event_id,
                              details={"reason": "record not found in the CRM (deleted?)"}))
        deps.store.mark_processed(command.event_id, "skipped")
        return SyncResult("skipped", entity, module, record_id)

    if kind == CONTRACT:
        result = _sync_contract(module, record, command.event_id, deps)
    else:
        result = _sync_customer(kind, module, record, command.event_id, deps)
    deps.store.mark_processed(command.event_id, result.action)
    return result


# ---------------------------------------------------------------- customers
def _sync_customer(kind: str, module: str, record: dict[str, Any], event_id: str, deps: SyncDependencies) -> SyncResult:
    record_id = str(record["id"])
    body = _map(deps, kind, record)
    carried = _text(record.get(deps.kundennummer_field))
    _refuse_claimed_number(deps, CUSTOMER, module, record_id, carried, deps.kundennummer_field)
    number = carried or _linked(deps, CUSTOMER, record_id)

    if number and deps.ameise.get_customer(number) is not None:
        deps.ameise.update_customer(number, body)
        action = "updated"
    else:
        if number:
            log.warning("%s/%s names Kundennummer %s, which Ameise does not know: creating a new customer",
                        module, record_id, number)
        number = deps.ameise.create_customer(body)
        action = "created"
    # The link is saved before the write-back: should the write-back fail, a
    # retry finds the link and updates instead of creating a second customer.
    _save_link(deps, CUSTOMER, module, record_id, number, deps.kundennummer_field)
    deps.store.log(_entry(action, "ok", CUSTOMER, module, record_id, number, event_id,
                          details={"kind": kind, "fields": sorted(body)}))
    written_back = _write_back(deps, module, record_id, deps.kundennummer_field, carried, number, CUSTOMER, event_id)
    return SyncResult(action, CUSTOMER, module, record_id, number, written_back)


def _customer_number_for_contract(record: dict[str, Any], event_id: str, deps: SyncDependencies) -> str:
    """The Kundennummer of the contract's customer, syncing that customer first if needed."""
    lookups = deps.mapping.get(CONTRACT).customer_lookups
    for lookup_field, customer_module in lookups.items():
        lookup = record.get(lookup_field)
        customer_id = _text(lookup.get("id") if isinstance(lookup, dict) else lookup)
        if not customer_id:
            continue
        linked = _linked(deps, CUSTOMER, customer_id)
        if linked:
            return linked
        kind = deps.module_entities.get(customer_module)
        if kind not in ("person", "company"):
            raise SyncRejected(f"{lookup_field} points to module {customer_module}, which is not a synced customer module",
                               field=lookup_field)
        customer = deps.crm.get_record(customer_module, customer_id)
        if customer is None:
            raise SyncRejected(f"the contract's customer {customer_module}/{customer_id} is not in the CRM", field=lookup_field)
        return _sync_customer(kind, customer_module, customer, event_id, deps).ameise_id or ""
    raise SyncRejected(f"the contract names no customer (one of {', '.join(lookups)} must be set)",
                       field=next(iter(lookups), None))


# ---------------------------------------------------------------- contracts
def _sync_contract(module: str, record: dict[str, Any], event_id: str, deps: SyncDependencies) -> SyncResult:
    record_id = str(record["id"])
    body = _map(deps, CONTRACT, record)
    body["Kunde"] = _customer_number_for_contract(record, event_id, deps)
    if deps.default_vermittler:
        body.setdefault("Vermittler", deps.default_vermittler)
    carried = _text(record.get(deps.vertragsnummer_field))
    _refuse_claimed_number(deps, CONTRACT, module, record_id, carried, deps.vertragsnummer_field)
    number = carried or _linked(deps, CONTRACT, record_id)

    if number and deps.ameise.get_contract(number) is not None:
        deps.ameise.update_contract(number, body)
        action = "updated"
    else:
        if number:
            log.warning("%s/%s names Vertragsnummer %s, which Ameise does not know: creating a new contract",
                        module, record_id, number)
        number = deps.ameise.create_contract(body)
        action = "created"
    _save_link(deps, CONTRACT, module, record_id, number, deps.vertragsnummer_field)
    deps.store.log(_entry(action, "ok", CONTRACT, module, record_id, number, event_id,
                          details={"kunde": body["Kunde"], "fields": sorted(body)}))
    written_back = _write_back(deps, module, record_id, deps.vertragsnummer_field, carried, number, CONTRACT, event_id)
    return SyncResult(action, CONTRACT, module, record_id, number, written_back)


# ---------------------------------------------------------------- shared steps
def _map(deps: SyncDependencies, kind: str, record: dict[str, Any]) -> dict[str, Any]:
    try:
        return deps.mapping.get(kind).to_ameise(record)
    except FieldValueError as exc:
        raise SyncRejected(str(exc), field=exc.field) from exc


def _write_back(deps: SyncDependencies, module: str, record_id: str, field: str, carried: str,
                number: str, entity: str, event_id: str) -> bool:
    """Write the Ameise number into the CRM record unless it already holds it."""
    if carried == number:
        return False
    [result] = deps.crm.update_records(module, [{"id": record_id, field: number}])
    if not result.ok:
        deps.store.log(_entry("written_back", "error", entity, module, record_id, number, event_id,
                              error=f"{result.code}: {result.message}", details={"field": result.field or field}))
        raise SyncRejected(f"writing {field}={number} back to {module}/{record_id} failed: {result.code} {result.message}",
                           field=result.field or field)
    deps.store.log(_entry("written_back", "ok", entity, module, record_id, number, event_id, details={"field": field}))
    return True


def _refuse_claimed_number(deps: SyncDependencies, entity: str, module: str, record_id: str, number: str,
                           field: str) -> None:
    """Refuse a number another CRM record is linked to: a clash is reported, never merged silently."""
    if not number:
        return
    holder = deps.store.find_link(entity, ameise_id=number)
    if holder is not None and holder.zoho_id != record_id:
        raise SyncRejected(
            f"{field} {number} of {module}/{record_id} already belongs to {holder.zoho_module}/{holder.zoho_id}: "
            "two CRM records claim one Ameise record; resolve the duplicate in the CRM", field=field)


def _save_link(deps: SyncDependencies, entity: str, module: str, record_id: str, number: str, field: str) -> None:
    try:
        deps.store.save_link(entity, module, record_id, number)
    except LinkConflict as exc:
        raise SyncRejected(f"{exc}: two CRM records claim one Ameise record; resolve the duplicate in the CRM",
                           field=field) from exc


def _linked(deps: SyncDependencies, entity: str, zoho_id: str) -> str:
    link = deps.store.find_link(entity, zoho_id=zoho_id)
    return link.ameise_id if link else ""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _entry(action: str, result: str, entity: str, module: str, zoho_id: str, ameise_id: str | None,
           event_id: str, *, error: str | None = None, details: dict | None = None) -> ActivityEntry:
    return ActivityEntry(direction=CRM_TO_AMEISE, action=action, result=result, entity=entity, zoho_module=module,
                         zoho_id=zoho_id, ameise_id=ameise_id, event_id=event_id, error=error, details=details or {})
