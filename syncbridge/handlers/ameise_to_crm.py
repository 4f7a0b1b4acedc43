"""Ameise -> CRM: a batch of DailyUp deltas applied to the CRM in batched upserts."""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, TypeVar

from syncbridge.deliveries import CONTRACTS, CUSTOMERS
from syncbridge.errors import (
    ReconnectNeeded,
    RecordNotReady,
    RecordRejected,
    Rejected,
    SyncError,
    Unavailable,
)
from syncbridge.handlers.linking import LinkGuard
from syncbridge.mapping import PLACEHOLDER, DailyUpToCrmMapping, FieldValueError, Mapping
from syncbridge.messages import CONTRACT, CUSTOMER, AmeiseRecordChanged, SyncAmeiseRecordsToCrm
from syncbridge.ports import (
    AMEISE_TO_CRM,
    ActivityEntry,
    CrmClient,
    DailyUpSnapshot,
    LinkConflict,
    RecordResult,
    SnapshotRow,
    Store,
)

log = logging.getLogger(__name__)


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
K = TypeVar("K")


@dataclass(frozen=True)
class RecordOutcome:
    """What became of one DailyUp delta."""

    delta_id: str
    status: RecordStatus
    action: str                          # created, updated, marked, deleted, skipped, duplicate, needs_linking;
                                         # failed
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
    # First-time linking: an unlinked record with a plausible CRM twin is held ("needs linking"), not created.
    guard: LinkGuard | None = None


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
    by_id: bool = False                  # an update of the linked CRM record ``zoho_id``, not an upsert by key


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
        if self._held(CUSTOMER, key, kind, row):
            return
        self._prepare_upsert(CUSTOMER, key, kind, row, {})

    def _prepare_contract(self, key: str) -> None:
        row = self.contracts.get(key)
        if row is None:
            raise RecordRejected(f"contract {key} is not in the DailyUp snapshot", field="Vertragsnummer")
        if row.deleted:
            self._prepare_deletion(CONTRACT, key, [self.deps.modules["contract"]])
            return
        if self._held(CONTRACT, key, "contract", row):
            return
        customer_module, customer_id = self._customer_of(key, str(row.data.get("Kundennummer") or ""))
        lookup_field = self._lookup_fields().get(customer_module)
        if lookup_field is None:
            raise RecordRejected(f"contract {key}: no customer_lookups field of [contract.crm_to_ameise] "
                                 f"points to {customer_module}", field="Kundennummer")
        self._prepare_upsert(CONTRACT, key, "contract", row, {lookup_field: {"id": customer_id}})

    def _held(self, entity: str, key: str, kind: str, row: SnapshotRow) -> bool:
        """Hold an unlinked record with a plausible CRM twin (or a contract of a held customer): needs linking."""
        guard = self.deps.guard
        if guard is None:
            return False
        reason = ""
        if entity == CONTRACT:
            customer = str(row.data.get("Kundennummer") or "")
            earlier = self.results.get((CUSTOMER, customer))
            if earlier is not None and earlier.action == "needs_linking":
                reason = f"needs linking: its customer {customer} needs linking first"
            elif customer and self.deps.store.find_link(CUSTOMER, ameise_id=customer) is None \
                    and guard.proposals.open_proposals_for(CUSTOMER, customer):
                reason = f"needs linking: its customer {customer} waits for a linking decision"
        if not reason and self.deps.store.find_link(entity, ameise_id=key) is None:
            reason = guard.hold_reason(kind, key, row.data, self.deps.modules[kind], self._search)
        if reason:
            self._done(entity, key, "needs_linking", reason=reason)
        return bool(reason)

    def _search(self, module: str, field_name: str, value: str) -> list[dict[str, Any]]:
        return self._call(lambda: self.deps.crm.find_records_by_field(module, field_name, value), search=True)

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
        module = self.deps.modules[kind]
        whole = None
        echoed = self.echoed.get((entity, key))
        link = self.deps.store.find_link(entity, ameise_id=key)
        if echoed and link is not None:
            fed = _fed_only_by(mapping, echoed)
            if fed & set(body):
                whole, body = body, {name: value for name, value in body.items() if name not in fed}
        if link is not None and link.zoho_module == module \
                and self.deps.store.create_under_way(f"{link.zoho_module}/{link.zoho_id}"):
            # syncbridge created this record in Ameise from the CRM one and has not written its number back yet
            # (the sync failed half-way, or waits for a retry): the CRM record lacks the key, so an upsert by
            # the key would insert a second one.  The linked record is updated by its id, number included.
            self.pending.append(_Pending(entity, key, module, {**body, "id": link.zoho_id}, zoho_id=link.zoho_id,
                                         unknown_codes=values.unknown_codes, by_id=True))
            return
        self.pending.append(_Pending(entity, key, module, body, unknown_codes=values.unknown_codes, whole=whole))

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
            # One kind of call per module: upserts by key, updates by id.
            for (module, by_id), items in _grouped(pending, lambda item: (item.module, item.by_id)).items():
                key_field = self._key_field(items[0].entity)
                for chunk in _chunks(items, self.deps.batch_size):
                    try:
                        bodies = [item.body for item in chunk]
                        results = self._call(
                            (lambda: self.deps.crm.update_records(module, bodies)) if by_id else
                            (lambda: self.deps.crm.upsert_records(module, bodies, [key_field])), records=len(chunk))
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
        for module, items in _grouped(self.deletions, lambda item: item.module).items():
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


def _grouped(items: list[_Pending], key: Callable[[_Pending], K]) -> dict[K, list[_Pending]]:
    """``items`` by ``key``, each group in the order the items came."""
    grouped: dict[K, list[_Pending]] = {}
    for item in items:
        grouped.setdefault(key(item), []).append(item)
    return grouped


def _chunks(items: list[T], size: int) -> list[list[T]]:
    return [items[start:start + size] for start in range(0, len(items), size)]
