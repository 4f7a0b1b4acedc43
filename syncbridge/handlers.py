"""Business handlers: one per command, free of Flask and kombu.

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
from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from syncbridge.dailyup.model import CONTRACTS, CUSTOMERS, ameise_body_as_dailyup
from syncbridge.errors import (
    ReconnectNeeded,
    RecordBusy,
    RecordNotReady,
    RecordRejected,
    Rejected,
    SyncError,
    Unavailable,
)
from syncbridge.mapping import PLACEHOLDER, DailyUpToCrmMapping, FieldValueError, Mapping
from syncbridge.messages import AmeiseRecordChanged, SyncAmeiseRecordsToCrm, SyncCrmRecordToAmeise
from syncbridge.ports import (
    AMEISE_TO_CRM,
    CRM_TO_AMEISE,
    ActivityEntry,
    AmeiseClient,
    CrmClient,
    DailyUpSnapshot,
    EchoMarks,
    LinkConflict,
    RecordResult,
    SnapshotRow,
    Store,
)

log = logging.getLogger(__name__)

CUSTOMER = "customer"
CONTRACT = "contract"


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
    echoes: EchoMarks | None = None          # what we wrote, so the next DailyUp does not send it back
    lock_wait: float = 30.0                  # seconds to wait while another worker syncs the same record
    lock_ttl: float = 120.0                  # a lock of a worker that died is free again after this
    # An event received more than this before a finished sync of its record began is covered by it;
    # the margin absorbs clock differences between the receiver's and the worker's machines.
    coalesce_margin: float = 1.0


@contextmanager
def record_lock(deps: SyncDependencies, key: str) -> Iterator[Callable[[], None]]:
    """Hold the lock of one CRM record across every worker process; yield a function that notes a finished sync."""
    owner = uuid.uuid4().hex
    deadline = time.monotonic() + deps.lock_wait
    while not deps.store.lock_record(key, owner, deps.lock_ttl):
        if time.monotonic() >= deadline:
            raise RecordBusy(f"{key} has been synced by another worker for over {deps.lock_wait:.0f} s")
        time.sleep(0.05)
    synced: list[datetime] = []
    started = datetime.now(UTC)
    try:
        yield lambda: synced.append(started)
    finally:
        deps.store.unlock_record(key, owner, synced_from=synced[0] if synced else None)


def sync_crm_record_to_ameise(command: SyncCrmRecordToAmeise, deps: SyncDependencies) -> SyncResult:
    """Create or update the CRM record of ``command`` in Ameise; idempotent per event.

    One record is synced by one worker at a time, and an event that a sync begun
    after it already covered is not fetched again (coalesced).
    """
    module, record_id = command.module, command.record_id
    if deps.store.was_processed(command.event_id):
        log.info("event %s already processed; nothing to do", command.event_id)
        return SyncResult("duplicate", None, module, record_id)
    kind = deps.module_entities.get(module)
    if kind is None:
        raise RecordRejected(f"CRM module {module!r} is not synced (SYNCBRIDGE_ZOHO_MODULES)")
    key = f"{module}/{record_id}"
    with record_lock(deps, key) as finished:
        covered_from = deps.store.last_synced_from(key)
        if command.received_at is not None and covered_from is not None \
                and covered_from > command.received_at + timedelta(seconds=deps.coalesce_margin):
            log.info("%s: event %s is covered by a sync begun after it", key, command.event_id)
            deps.store.mark_processed(command.event_id, "coalesced")
            return SyncResult("coalesced", None, module, record_id)
        result = _sync_record(command, kind, deps)
        finished()
        return result


def _sync_record(command: SyncCrmRecordToAmeise, kind: str, deps: SyncDependencies) -> SyncResult:
    module, record_id = command.module, command.record_id
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
        number = _create_once(deps, f"{module}/{record_id}", CUSTOMER, body, deps.ameise.create_customer,
                              deps.ameise.update_customer, lambda: _customer_candidates(deps, body))
        action = "created"
    # The link is saved before the write-back: should the write-back fail, a
    # retry finds the link and updates instead of creating a second customer.
    _save_link(deps, CUSTOMER, module, record_id, number, deps.kundennummer_field)
    deps.store.note_create(f"{module}/{record_id}", False)
    _remember_echo(deps, CUSTOMER, number, body)
    deps.store.log(_entry(action, "ok", CUSTOMER, module, record_id, number, event_id,
                          details={"kind": kind, "fields": sorted(body)}))
    written_back = _write_back(deps, module, record_id, deps.kundennummer_field, carried, number, CUSTOMER, event_id)
    return SyncResult(action, CUSTOMER, module, record_id, number, written_back)


def _customer_number_for_contract(record: dict[str, Any], event_id: str, deps: SyncDependencies) -> str:
    """The Kundennummer of the contract's customer, syncing that customer first if needed."""
    lookups = deps.mapping.from_crm(CONTRACT).customer_lookups
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
            raise RecordRejected(f"{lookup_field} points to module {customer_module}, which is not a synced customer module",
                                 field=lookup_field)
        # The customer's own event may be synced by another worker right now: never create it twice.
        with record_lock(deps, f"{customer_module}/{customer_id}") as finished:
            linked = _linked(deps, CUSTOMER, customer_id)
            if linked:
                return linked
            customer = deps.crm.get_record(customer_module, customer_id)
            if customer is None:
                raise RecordRejected(f"the contract's customer {customer_module}/{customer_id} is not in the CRM",
                                     field=lookup_field)
            number = _sync_customer(kind, customer_module, customer, event_id, deps).ameise_id or ""
            finished()
            return number
    raise RecordRejected(f"the contract names no customer (one of {', '.join(lookups)} must be set)",
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
        number = _create_once(deps, f"{module}/{record_id}", CONTRACT, body, deps.ameise.create_contract,
                              deps.ameise.update_contract, lambda: deps.ameise.customer_contracts(body["Kunde"]))
        action = "created"
    _save_link(deps, CONTRACT, module, record_id, number, deps.vertragsnummer_field)
    deps.store.note_create(f"{module}/{record_id}", False)
    _remember_echo(deps, CONTRACT, number, body)
    deps.store.log(_entry(action, "ok", CONTRACT, module, record_id, number, event_id,
                          details={"kunde": body["Kunde"], "fields": sorted(body)}))
    written_back = _write_back(deps, module, record_id, deps.vertragsnummer_field, carried, number, CONTRACT, event_id)
    return SyncResult(action, CONTRACT, module, record_id, number, written_back)


# ---------------------------------------------------------------- creating exactly once
# The fields a record created by an earlier, interrupted attempt must share with the body.
CREATED_MATCH = {
    CUSTOMER: ("Personentyp", "Vorname", "Nachname", "Firma", "Geburtsdatum", "Email"),
    CONTRACT: ("Kunde", "Sparte", "Gesellschaft", "Versicherungsscheinnummer", "Antragsnummer", "Laufzeit.Beginn"),
}


def _create_once(deps: SyncDependencies, key: str, entity: str, body: dict[str, Any],
                 create: Callable[[dict[str, Any]], str], update: Callable[[str, dict[str, Any]], None],
                 candidates: Callable[[], list[dict[str, Any]]]) -> str:
    """Create the record in Ameise, unless an earlier attempt that died after sending its create made it.

    Ameise takes no idempotency key, so a create is noted (under the record's
    lease) before it is sent and cleared once its number is linked.  Found still
    noted, the earlier create may have reached Ameise: a record matching the
    body that no CRM record is linked to is that one, and is updated instead.
    """
    if deps.store.create_under_way(key):
        fields = [f for f in CREATED_MATCH[entity] if _read(body, f) not in (None, "")]
        matches = [c for c in candidates()
                   if all(str(_read(c, f) or "") == str(_read(body, f)) for f in fields)
                   and deps.store.find_link(entity, ameise_id=str(c.get("Id"))) is None]
        if matches:
            number = str(max(matches, key=lambda c: str(c.get("Id")))["Id"])
            log.warning("%s: an interrupted earlier create reached Ameise as %s; updating it, not creating again",
                        key, number)
            update(number, body)
            return number
    deps.store.note_create(key, True)
    return create(body)


def _customer_candidates(deps: SyncDependencies, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Customers Ameise finds by the body's e-mail address, else by its name."""
    if body.get("Email"):
        return deps.ameise.search_customers({"mail": body["Email"]})
    name = body.get("Firma") or " ".join(filter(None, (body.get("Vorname"), body.get("Nachname"))))
    return deps.ameise.search_customers({"name": name}) if name else []


def _read(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


# ---------------------------------------------------------------- shared steps
def _remember_echo(deps: SyncDependencies, entity: str, number: str, body: dict[str, Any]) -> None:
    """Mark what was just written to Ameise: the next DailyUp brings it back, and it is no news for the CRM."""
    if deps.echoes is not None:
        deps.echoes.remember_echo(entity, number, ameise_body_as_dailyup(entity, body))


def _map(deps: SyncDependencies, kind: str, record: dict[str, Any]) -> dict[str, Any]:
    try:
        return deps.mapping.from_crm(kind).to_ameise(record)
    except FieldValueError as exc:
        raise RecordRejected(str(exc), field=exc.field) from exc


def _write_back(deps: SyncDependencies, module: str, record_id: str, field: str, carried: str,
                number: str, entity: str, event_id: str) -> bool:
    """Write the Ameise number into the CRM record unless it already holds it."""
    if carried == number:
        return False
    [result] = deps.crm.update_records(module, [{"id": record_id, field: number}])
    if not result.ok:
        deps.store.log(_entry("written_back", "error", entity, module, record_id, number, event_id,
                              error=f"{result.code}: {result.message}", details={"field": result.field or field}))
        raise RecordRejected(f"writing {field}={number} back to {module}/{record_id} failed: {result.code} {result.message}",
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
        raise RecordRejected(
            f"{field} {number} of {module}/{record_id} already belongs to {holder.zoho_module}/{holder.zoho_id}: "
            "two CRM records claim one Ameise record; resolve the duplicate in the CRM", field=field)


def _save_link(deps: SyncDependencies, entity: str, module: str, record_id: str, number: str, field: str) -> None:
    try:
        deps.store.save_link(entity, module, record_id, number)
    except LinkConflict as exc:
        raise RecordRejected(f"{exc}: two CRM records claim one Ameise record; resolve the duplicate in the CRM",
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
           event_id: str, *, error: str | None = None, details: dict[str, Any] | None = None) -> ActivityEntry:
    return ActivityEntry(direction=CRM_TO_AMEISE, action=action, result=result, entity=entity, zoho_module=module,
                         zoho_id=zoho_id, ameise_id=ameise_id, event_id=event_id, error=error, details=details or {})


# ================================================================ Ameise -> CRM (DailyUp)
class RecordStatus(StrEnum):
    """What became of one DailyUp delta, and so of its message."""

    OK = "ok"                    # done (or nothing to do): acknowledge
    REJECTED = "rejected"        # refused by Zoho or our rules: dead-letter
    UNAVAILABLE = "unavailable"  # Zoho unreachable, or the contract's customer not in the CRM yet: retry later


OK, REJECTED, UNAVAILABLE = RecordStatus.OK, RecordStatus.REJECTED, RecordStatus.UNAVAILABLE

ENTITY_KIND_OF_PERSONENTYP = {"natuerlich": "person", "juristisch": "company"}
CUSTOMER_KINDS = ("person", "company")
DELETED_STATUS = "geloescht"
ZOHO_RECORDS_PER_CREDIT = 10   # an upsert costs 1 credit per 10 records (zoho-crm.md, "Limits")

T = TypeVar("T")


@dataclass(frozen=True)
class RecordOutcome:
    """What became of one DailyUp delta."""

    delta_id: str
    status: RecordStatus
    action: str                          # created, updated, marked, deleted, skipped, duplicate; failed
    entity: str
    key: str                             # Kundennummer or Vertragsnummer
    module: str | None = None
    zoho_id: str | None = None
    error: str = ""                      # one line: why it was rejected or must wait
    code: str | None = None              # Zoho's code (MANDATORY_NOT_FOUND, INVALID_DATA, ...)
    field: str | None = None             # the field Zoho or our rules named
    retry_after: float | None = None     # seconds Zoho asked us to wait
    reason: str = ""                     # why a delta was skipped
    unknown_codes: tuple[str, ...] = ()  # codes written as they are, no lookup list knowing them
    waiting: bool = False                # unavailable until a person reconnects the CRM: not a retry to count

    def describe(self) -> str:
        """One line for logs and dead letters."""
        return self.error or f"{self.action} {self.entity} {self.key}"


@dataclass
class CrmCallStats:
    """The return path's Zoho calls, for records per call and per credit."""

    records_sent: int = 0    # records in upsert and delete calls
    write_calls: int = 0     # upsert and delete calls
    search_calls: int = 0
    credits: int = 0         # as Zoho bills them: 1 per 10 upserted records, 1 per other call

    @property
    def calls(self) -> int:
        return self.write_calls + self.search_calls

    @property
    def records_per_call(self) -> float:
        return self.records_sent / self.calls if self.calls else 0.0

    @property
    def records_per_credit(self) -> float:
        return self.records_sent / self.credits if self.credits else 0.0


@dataclass
class ReturnDependencies:
    """What the Ameise -> CRM handler needs, built by :mod:`syncbridge.bootstrap`."""

    crm: CrmClient
    snapshot: DailyUpSnapshot
    store: Store
    mapping: Mapping
    modules: dict[str, str]                  # entity kind -> CRM module (Settings.module_for)
    kundennummer_field: str = "Kundennummer"
    vertragsnummer_field: str = "Vertragsnummer"
    status_field: str = "Ameise_Status"
    delete_mode: str = "mark"                # mark, delete or ignore
    batch_size: int = 100                    # records per Zoho call (at most 100)
    stats: CrmCallStats = field(default_factory=CrmCallStats)


def sync_ameise_records_to_crm(command: SyncAmeiseRecordsToCrm, deps: ReturnDependencies) -> list[RecordOutcome]:
    """Apply DailyUp deltas to the CRM in batched upserts; one outcome per delta, in order."""
    return _ReturnBatch(command.records, deps).run()


@dataclass
class _Pending:
    """One record waiting for its Zoho call."""

    entity: str
    key: str
    module: str
    body: dict[str, Any] = field(default_factory=dict)
    action: str | None = None            # None: created or updated, as Zoho answers
    zoho_id: str | None = None           # of a record to delete
    unknown_codes: tuple[str, ...] = ()
    whole: dict[str, Any] | None = None  # the untrimmed body, when echoes were left out of ``body``


class _ReturnBatch:
    """One run of :func:`sync_ameise_records_to_crm`: customers first, then contracts, then deletions."""

    def __init__(self, records: Sequence[AmeiseRecordChanged], deps: ReturnDependencies) -> None:
        self.records = records
        self.deps = deps
        self.results: dict[tuple[str, str], RecordOutcome] = {}   # (entity, key) -> outcome (delta_id blank)
        self.pending: list[_Pending] = []
        self.deletions: list[_Pending] = []
        self.customers: dict[str, SnapshotRow] = {}
        self.contracts: dict[str, SnapshotRow] = {}
        self.lookups: dict[str, dict[str, str]] = {}
        self.down: Unavailable | None = None     # after one outage, no further call in this batch
        # (entity, key) -> the columns every delta of the record in this batch names as echoed
        self.echoed: dict[tuple[str, str], set[str]] = {}
        for record in records:
            columns = set(record.echoed_fields)
            known = self.echoed.get((record.entity, record.key))
            self.echoed[(record.entity, record.key)] = columns if known is None else known & columns

    def run(self) -> list[RecordOutcome]:
        store = self.deps.store
        seen = {r.delta_id for r in self.records if store.was_processed(r.delta_id)}
        todo = list(dict.fromkeys((r.entity, r.key) for r in self.records if r.delta_id not in seen))
        if todo:
            self._read(todo)
            # The snapshot, not the message, says whether a record still exists:
            # a later delivery wins over an older, still queued delta.
            for entity, key in todo:
                if entity == CUSTOMER:
                    self._guard(entity, key, self._prepare_customer)
            self._send_upserts()
            for entity, key in todo:
                if entity == CONTRACT:
                    self._guard(entity, key, self._prepare_contract)
            self._send_upserts()
            self._send_deletions()
        outcomes = []
        for record in self.records:
            if record.delta_id in seen:
                outcome = RecordOutcome(record.delta_id, OK, "duplicate", record.entity, record.key)
            else:
                outcome = replace(self.results[(record.entity, record.key)], delta_id=record.delta_id)
                if outcome.status == OK:
                    self._log(record, outcome)
                    store.mark_processed(record.delta_id, outcome.action)
                    seen.add(record.delta_id)  # the same message twice in one batch counts once
            outcomes.append(outcome)
        counts = {s: sum(o.status == s for o in outcomes) for s in (OK, REJECTED, UNAVAILABLE)}
        log.info("%d DailyUp deltas: %d ok (%d duplicates), %d rejected, %d unavailable", len(outcomes),
                 counts[OK], sum(o.action == "duplicate" for o in outcomes), counts[REJECTED], counts[UNAVAILABLE])
        return outcomes

    # ------------------------------------------------------------ reading
    def _read(self, todo: list[tuple[str, str]]) -> None:
        """Read the batch's snapshot rows (one query per table) and the lookup lists the mapping uses."""
        snapshot = self.deps.snapshot
        contract_keys = [key for entity, key in todo if entity == CONTRACT]
        if contract_keys:
            self.contracts = snapshot.snapshot_rows(CONTRACTS, contract_keys)
        customer_keys = [key for entity, key in todo if entity == CUSTOMER]
        customer_keys += [row.data["Kundennummer"] for row in self.contracts.values() if row.data.get("Kundennummer")]
        if customer_keys:
            self.customers = snapshot.snapshot_rows(CUSTOMERS, list(dict.fromkeys(customer_keys)))
        tables = set().union(*(self.deps.mapping.to_crm(kind).lookup_tables for kind in self.deps.modules))
        self.lookups = {table: snapshot.lookups(table) for table in sorted(tables)}

    # ------------------------------------------------------------ preparing
    def _guard(self, entity: str, key: str, prepare: Callable[[str], None]) -> None:
        try:
            prepare(key)
        except SyncError as failed:
            self._fail(entity, key, failed)

    def _prepare_customer(self, key: str) -> None:
        row = self.customers.get(key)
        if row is None:
            raise RecordRejected(f"customer {key} is not in the DailyUp snapshot", field="Kundennummer")
        kind = _customer_kind(row)
        if row.deleted:
            self._prepare_deletion(CUSTOMER, key, self._customer_modules(kind))
            return
        if kind is None:
            raise RecordRejected(f"customer {key}: Personentyp {row.data.get('Personentyp')!r} is neither "
                                 f"{' nor '.join(ENTITY_KIND_OF_PERSONENTYP)}", field="Personentyp")
        self._prepare_upsert(CUSTOMER, key, kind, row, {})

    def _prepare_contract(self, key: str) -> None:
        row = self.contracts.get(key)
        if row is None:
            raise RecordRejected(f"contract {key} is not in the DailyUp snapshot", field="Vertragsnummer")
        if row.deleted:
            self._prepare_deletion(CONTRACT, key, [self.deps.modules["contract"]])
            return
        customer_module, customer_id = self._customer_of(key, str(row.data.get("Kundennummer") or ""))
        lookup_field = self._lookup_fields().get(customer_module)
        if lookup_field is None:
            raise RecordRejected(f"contract {key}: no customer_lookups field of [contract.crm_to_ameise] "
                                 f"points to {customer_module}", field="Kundennummer")
        self._prepare_upsert(CONTRACT, key, "contract", row, {lookup_field: {"id": customer_id}})

    def _prepare_upsert(self, entity: str, key: str, kind: str, row: SnapshotRow, extra: dict[str, Any]) -> None:
        """Queue the upsert of one record: the full mapped record, less the echoes of a record the CRM has.

        The full record, not only the changed columns: the upsert inserts when the
        CRM lacks the record (never synced, or deleted there), and then needs every
        mandatory field; a record costs the same credits either way.

        The echo rule: when the record is linked (the CRM has it: syncbridge wrote
        it to Ameise or applied it before), the CRM fields fed only by columns the
        delta names in ``echoed_fields`` are left out.  Those values came from the
        CRM, and the CRM may hold a newer one by now; sending them back could only
        overwrite it.  A record that is not linked is sent whole.  Should Zoho
        still answer MANDATORY_NOT_FOUND for a trimmed record (the link outlived
        the CRM record, so the upsert inserts), it is sent again whole.
        """
        mapping = self.deps.mapping.to_crm(kind)
        try:
            values = mapping.to_crm(row.data, self.lookups)
        except FieldValueError as exc:
            raise RecordRejected(f"syncbridge field={exc.field}: {exc}", field=exc.field) from exc
        body = {**values.fields, **extra, self._key_field(entity): key}
        if self.deps.delete_mode == "mark":
            body[self.deps.status_field] = None  # delivered again: no longer marked as deleted
        whole = None
        echoed = self.echoed.get((entity, key))
        if echoed and self.deps.store.find_link(entity, ameise_id=key) is not None:
            fed = _fed_only_by(mapping, echoed)
            if fed & set(body):
                whole, body = body, {name: value for name, value in body.items() if name not in fed}
        self.pending.append(_Pending(entity, key, self.deps.modules[kind], body, unknown_codes=values.unknown_codes,
                                     whole=whole))

    def _prepare_deletion(self, entity: str, key: str, modules: list[str]) -> None:
        mode = self.deps.delete_mode
        if mode == "ignore":
            self._done(entity, key, "skipped", reason="deleted in Ameise; SYNCBRIDGE_DAILYUP_DELETE_MODE=ignore")
            return
        found = self._find(entity, key, modules)
        if found is None:
            self._done(entity, key, "skipped", reason="deleted in Ameise and not in the CRM")
            return
        module, zoho_id = found
        if mode == "delete":
            self.deletions.append(_Pending(entity, key, module, action="deleted", zoho_id=zoho_id))
        else:
            body = {self._key_field(entity): key, self.deps.status_field: DELETED_STATUS}
            self.pending.append(_Pending(entity, key, module, body, action="marked"))

    def _customer_of(self, contract_key: str, kundennummer: str) -> tuple[str, str]:
        """The CRM module and id of a contract's customer: this batch, the link, or a search."""
        if not kundennummer:
            raise RecordRejected(f"contract {contract_key} names no Kundennummer", field="Kundennummer")
        earlier = self.results.get((CUSTOMER, kundennummer))
        if earlier is not None and earlier.status != OK:
            failed = RecordRejected if earlier.status == REJECTED else RecordNotReady
            raise failed(f"contract {contract_key}: its customer {kundennummer} failed: {earlier.error}",
                         field="Kundennummer", retry_after=earlier.retry_after)
        row = self.customers.get(kundennummer)
        found = self._find(CUSTOMER, kundennummer, self._customer_modules(_customer_kind(row) if row else None))
        if found is not None:
            return found
        if row is None:
            raise RecordRejected(f"contract {contract_key}: customer {kundennummer} is neither in the DailyUp "
                                 "snapshot nor in the CRM", field="Kundennummer")
        if row.deleted:
            raise RecordRejected(f"contract {contract_key}: customer {kundennummer} was deleted in Ameise and is "
                                 "not in the CRM", field="Kundennummer")
        raise RecordNotReady(f"contract {contract_key}: customer {kundennummer} is not in the CRM yet",
                             field="Kundennummer")

    def _find(self, entity: str, key: str, modules: list[str]) -> tuple[str, str] | None:
        """The CRM module and id of a record by its number: the link, else a search by the key field."""
        link = self.deps.store.find_link(entity, ameise_id=key)
        if link is not None:
            return link.zoho_module, link.zoho_id
        key_field = self._key_field(entity)
        for module in modules:
            found = self._call(lambda: self.deps.crm.find_records_by_field(module, key_field, key),
                               search=True)
            if len(found) > 1:
                raise RecordRejected(f"{len(found)} {module} records carry {key_field} {key}: resolve the "
                                     "duplicate in the CRM", field=key_field)
            if found:
                zoho_id = str(found[0]["id"])
                self._link(entity, module, zoho_id, key)
                return module, zoho_id
        return None

    # ------------------------------------------------------------ sending
    def _send_upserts(self) -> None:
        pending, self.pending = self.pending, []
        while pending:
            again: list[_Pending] = []      # trimmed records Zoho inserted after all: sent again whole
            for module, items in _by_module(pending).items():
                key_field = self._key_field(items[0].entity)
                for chunk in _chunks(items, self.deps.batch_size):
                    try:
                        bodies = [item.body for item in chunk]
                        results = self._call(lambda: self.deps.crm.upsert_records(module, bodies, [key_field]),
                                             records=len(chunk))
                    except SyncError as failed:
                        for item in chunk:
                            self._fail(item.entity, item.key, failed)
                        continue
                    for item, result in zip(chunk, results, strict=True):
                        if not result.ok and result.code == "MANDATORY_NOT_FOUND" and item.whole is not None:
                            again.append(replace(item, body=item.whole, whole=None))
                        else:
                            self._settle(item, result)
            pending = again

    def _send_deletions(self) -> None:
        for module, items in _by_module(self.deletions).items():
            for chunk in _chunks(items, self.deps.batch_size):
                try:
                    ids = [i.zoho_id or "" for i in chunk]   # a deletion always knows its CRM id
                    results = self._call(lambda: self.deps.crm.delete_records(module, ids),
                                         records=len(chunk), credits=1)
                except SyncError as failed:
                    for item in chunk:
                        self._fail(item.entity, item.key, failed)
                    continue
                for item, result in zip(chunk, results, strict=True):
                    gone = not result.ok and result.code == "INVALID_DATA"  # Zoho no longer has that id
                    if result.ok or gone:
                        # Should Ameise deliver the number again, it is a new CRM record, not a conflict.
                        self.deps.store.delete_link(item.entity, item.zoho_id or "")
                    if gone:
                        self._done(item.entity, item.key, "skipped", module=module, zoho_id=item.zoho_id,
                                   reason="deleted in Ameise and already gone from the CRM")
                    else:
                        self._settle(item, result)

    def _settle(self, item: _Pending, result: RecordResult) -> None:
        """Turn Zoho's answer for one record into its outcome; link what Zoho took."""
        if not result.ok:
            where = f" field={result.field}" if result.field else ""
            self._fail(item.entity, item.key, RecordRejected(f"zoho {result.code}{where}: {result.message}",
                                                             code=result.code, field=result.field))
            return
        zoho_id = result.record_id or item.zoho_id or ""
        if item.action != "deleted":
            try:
                self._link(item.entity, item.module, zoho_id, item.key)
            except SyncError as failed:
                self._fail(item.entity, item.key, failed)
                return
        action = item.action or ("created" if result.action == "insert" else "updated")
        self._done(item.entity, item.key, action, module=item.module, zoho_id=zoho_id,
                   unknown_codes=item.unknown_codes)

    def _call(self, call: Callable[[], T], *, records: int = 0, credits: int | None = None,
              search: bool = False) -> T:
        """Make one Zoho call, counted; after an outage no more calls are tried in this batch."""
        if self.down is not None:
            raise self.down
        try:
            answer = call()
        except Unavailable as exc:
            self.down = exc
            raise
        stats = self.deps.stats
        stats.records_sent += records
        if search:
            stats.search_calls += 1
        else:
            stats.write_calls += 1
        stats.credits += credits if credits is not None else max(1, math.ceil(records / ZOHO_RECORDS_PER_CREDIT))
        return answer

    # ------------------------------------------------------------ results
    def _link(self, entity: str, module: str, zoho_id: str, key: str) -> None:
        try:
            self.deps.store.save_link(entity, module, zoho_id, key)
        except LinkConflict as exc:
            raise RecordRejected(f"{exc}, but the CRM has {key} as {module}/{zoho_id}: two CRM records claim one "
                                 "Ameise record; resolve the duplicate in the CRM",
                                 field=self._key_field(entity)) from exc

    def _done(self, entity: str, key: str, action: str, *, module: str | None = None, zoho_id: str | None = None,
              reason: str = "", unknown_codes: tuple[str, ...] = ()) -> None:
        self.results[(entity, key)] = RecordOutcome("", OK, action, entity, key, module, zoho_id, reason=reason,
                                                    unknown_codes=unknown_codes)

    def _fail(self, entity: str, key: str, failed: SyncError) -> None:
        """Note why a record cannot be applied: now (unavailable) or at all (rejected)."""
        status = REJECTED if isinstance(failed, Rejected) else UNAVAILABLE
        # Our own refusals read as they are; an outside system's name its system, status and code.
        error = failed.message if isinstance(failed, (RecordRejected, RecordNotReady)) else failed.describe()
        self.results[(entity, key)] = RecordOutcome("", status, "failed", entity, key, error=error,
                                                    code=failed.code, field=failed.field,
                                                    retry_after=failed.retry_after,
                                                    waiting=isinstance(failed, ReconnectNeeded))

    def _log(self, record: AmeiseRecordChanged, outcome: RecordOutcome) -> None:
        details: dict[str, Any] = {"change": record.change, "import_id": record.import_id}
        if outcome.reason:
            details["reason"] = outcome.reason
        if outcome.unknown_codes:
            details["unknown_codes"] = list(outcome.unknown_codes)
        self.deps.store.log(ActivityEntry(
            direction=AMEISE_TO_CRM, action=outcome.action, result="ok", entity=outcome.entity,
            zoho_module=outcome.module, zoho_id=outcome.zoho_id, ameise_id=outcome.key, event_id=record.delta_id,
            details=details))

    # ------------------------------------------------------------ names
    def _key_field(self, entity: str) -> str:
        return self.deps.kundennummer_field if entity == CUSTOMER else self.deps.vertragsnummer_field

    def _customer_modules(self, kind: str | None) -> list[str]:
        """The customer modules to look in, the one of ``kind`` first."""
        kinds = ([kind] if kind else []) + [k for k in CUSTOMER_KINDS if k != kind]
        return list(dict.fromkeys(self.deps.modules[k] for k in kinds))

    def _lookup_fields(self) -> dict[str, str]:
        """CRM module of a customer -> the Deal's lookup field for it (crm_to_ameise customer_lookups)."""
        fields: dict[str, str] = {}
        for lookup_field, module in self.deps.mapping.from_crm(CONTRACT).customer_lookups.items():
            fields.setdefault(module, lookup_field)
        return fields


def _fed_only_by(mapping: DailyUpToCrmMapping, columns: set[str]) -> set[str]:
    """The CRM fields whose every DailyUp column (of a rule or its template) is one of ``columns``."""
    fed = set()
    for rule in mapping.fields:
        read = {column for column, _ in PLACEHOLDER.findall(rule.template)} if rule.template else {rule.dailyup}
        if read and read <= columns:
            fed.add(rule.crm)
    return fed


def _customer_kind(row: SnapshotRow) -> str | None:
    return ENTITY_KIND_OF_PERSONENTYP.get(str(row.data.get("Personentyp") or "").strip())


def _by_module(items: list[_Pending]) -> dict[str, list[_Pending]]:
    grouped: dict[str, list[_Pending]] = {}
    for item in items:
        grouped.setdefault(item.module, []).append(item)
    return grouped


def _chunks(items: list[T], size: int) -> list[list[T]]:
    return [items[start:start + size] for start in range(0, len(items), size)]
