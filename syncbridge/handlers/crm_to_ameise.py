"""CRM -> Ameise: one CRM record, read in full and created or updated in Ameise."""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from syncbridge.errors import (
    RecordBusy,
    RecordRejected,
)
from syncbridge.handlers.events import bounded
from syncbridge.mapping import FieldValueError, Mapping
from syncbridge.messages import CONTRACT, CUSTOMER, SyncCrmRecordToAmeise
from syncbridge.ports import (
    CRM_TO_AMEISE,
    ActivityEntry,
    AmeiseClient,
    CrmClient,
    DeletedCrmRecord,
    EchoMarks,
    Link,
    LinkConflict,
    RecordLease,
    Store,
    SweepState,
)

log = logging.getLogger(__name__)



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
    # Where a record found deleted in the CRM is noted (the sweep's list of deleted records), and whether
    # it is reported too (SYNCBRIDGE_SWEEP_DELETED: ignore or report).
    deleted: SweepState | None = None
    deleted_policy: str = "ignore"
    # The worker's clocks: wall time (compared with the receiver's), and the waits for a busy record.
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


class _AlreadyProcessed(Exception):
    """The event was handled to the end before (told by the store when the lock was asked for)."""


class _RecordOutcome:
    """The store as one record's sync sees it: what ends the sync is kept and written at once.

    Activity log entries, the processed mark, the cleared create note, the record's link and,
    when the store is the sync's echo marks too, the echo marks are written together with the
    release of its lock, in one transaction (:meth:`Store.finish_record`), not one transaction each.  The link read with the lock
    answers the sync's lookups of it.  The note that a create is about to be sent is in the
    store before the create goes out: should the process die after sending it, a retry finds
    the note and looks for what the create made (:func:`_interrupted_create`).  A record
    without a link has it noted with its lock (``lease.noted``; no transaction of its own
    then), and withdrawn with the release when no create was sent after all.
    """

    def __init__(self, store: Store, key: str, lease: RecordLease, link: tuple[str, str] | None = None) -> None:
        self._store = store
        self.key = key
        self.lease = lease
        self.entries: list[ActivityEntry] = []
        self.processed: tuple[str, str] | None = None
        self.created = False
        self._own = link if lease.link_read else None     # (entity, Zoho id) of the link read with the lock
        self._create_sent = False
        self._noted = lease.noted                         # a create note the lease made, not sent on yet
        self.link: Link | None = None                     # saved with the release
        self.echoes: list[tuple[str, str, dict[str, Any]]] = []    # written with the release

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def log(self, entry: ActivityEntry) -> ActivityEntry:
        stamped = replace(entry, at=entry.at or datetime.now(UTC))
        self.entries.append(stamped)
        return stamped

    def remember_echo(self, entity: str, key: str, data: dict[str, Any]) -> None:
        self.echoes.append((entity, key, dict(data)))

    def mark_processed(self, event_id: str, outcome: str) -> None:
        if self.processed is None:
            self.processed = (event_id, outcome)

    def note_create(self, key: str, creating: bool) -> None:
        if key == self.key:
            self.created = not creating
            self.lease = replace(self.lease, creating=creating)
            if not creating:
                return
            self._create_sent = True
            if self._noted:
                return      # noted with the lock, in the store since
        self._store.note_create(key, creating)

    @property
    def withdrawn(self) -> bool:
        """Whether the create note the lease made is to be cleared with the release: no create was sent."""
        return self._noted and not self._create_sent and not self.created

    def create_under_way(self, key: str) -> bool:
        if key == self.key:     # read with the lease, and noted here since: no one else writes it meanwhile
            return self.lease.creating
        return bool(self._store.create_under_way(key))

    def last_synced_from(self, key: str) -> datetime | None:
        if key == self.key:
            return self.lease.synced_from
        return self._store.last_synced_from(key)

    def find_link(self, entity: str, *, zoho_id: str | None = None, ameise_id: str | None = None) -> Link | None:
        if self._own is not None and entity == self._own[0]:
            own = self.link or self.lease.link      # the record's link: no one else writes it under the lock
            if zoho_id == self._own[1] and ameise_id is None:
                return own
            if zoho_id is None and own is not None and own.ameise_id == ameise_id:
                return own      # a number is linked to one record at most
        return self._store.find_link(entity, zoho_id=zoho_id, ameise_id=ameise_id)

    def save_link(self, entity: str, zoho_module: str, zoho_id: str, ameise_id: str) -> Link:
        own = self.lease.link
        if self._own == (entity, zoho_id) and (
                self._create_sent or (own is not None and (own.zoho_module, own.ameise_id) == (zoho_module, ameise_id))):
            # The number of the create this sync sent (no other record can hold it), or the link as it is:
            # saved with the release.  Should the process die before, the create note stays and a retry
            # finds the customer by what it was created with.
            self.link = Link(entity, zoho_module, zoho_id, ameise_id)
            return self.link
        return self._store.save_link(entity, zoho_module, zoho_id, ameise_id)


@contextmanager
def record_lock(deps: SyncDependencies, key: str, *, event_id: str | None = None,
                link: tuple[str, str] | None = None) -> Iterator[tuple[Callable[[], None], SyncDependencies]]:
    """Hold the lock of one CRM record across every worker process.

    Yields a function that notes a finished sync, and the dependencies to sync the record
    with: their store keeps the log entries, the processed mark, the cleared create note
    and the record's link and writes them with the release of the lock, in one transaction.
    ``event_id``: raise :class:`_AlreadyProcessed` (the lock not taken) when that event was
    handled before; ``link``: (entity, Zoho id) of the record's link, read with the lock — a
    record without one may be created, so a create is noted with the lock (withdrawn with its
    release when none was sent).
    """
    owner = uuid.uuid4().hex
    deadline = deps.monotonic() + deps.lock_wait
    while (lease := deps.store.take_record(key, owner, deps.lock_ttl, event_id=event_id, link=link,
                                           note_create=link is not None)) is None:
        if deps.monotonic() >= deadline:
            raise RecordBusy(f"{key} has been synced by another worker for over {deps.lock_wait:.0f} s")
        deps.sleep(0.05)
    if lease.processed:
        raise _AlreadyProcessed(event_id)
    synced: list[datetime] = []
    started = deps.now()
    outcome = _RecordOutcome(deps.store, key, lease, link)
    # Echo marks noted by the store itself (not another one) are written with the record's outcome.
    echoes = cast(EchoMarks, outcome) if deps.echoes is not None and cast(object, deps.echoes) is deps.store \
        else deps.echoes
    try:
        yield (lambda: synced.append(started)), replace(deps, store=cast(Store, outcome), echoes=echoes)
    finally:
        try:
            deps.store.finish_record(key, owner, synced_from=synced[0] if synced else None, entries=outcome.entries,
                                     processed=outcome.processed, created=outcome.created, link=outcome.link,
                                     echoes=outcome.echoes, withdrawn=outcome.withdrawn)
        except LinkConflict as exc:
            field = deps.vertragsnummer_field if outcome.link and outcome.link.entity == CONTRACT \
                else deps.kundennummer_field
            raise RecordRejected(f"{exc}: two CRM records claim one Ameise record; resolve the duplicate in the CRM",
                                 field=field) from exc


def sync_crm_record_to_ameise(command: SyncCrmRecordToAmeise, deps: SyncDependencies,
                              attempt: Callable[[SyncResult], ActivityEntry] | None = None) -> SyncResult:
    """Create or update the CRM record of ``command`` in Ameise; idempotent per event.

    One record is synced by one worker at a time, and an event that a sync begun
    after it already covered is not fetched again (coalesced).  ``attempt``: the
    activity log entry of this delivery, made from the result, written with the record's
    outcome (in the same transaction).
    """
    module, record_id = command.module, command.record_id
    kind = deps.module_entities.get(module)
    if kind is None:
        raise RecordRejected(f"CRM module {module!r} is not synced (SYNCBRIDGE_ZOHO_MODULES)")
    key = f"{module}/{record_id}"
    entity = CONTRACT if kind == CONTRACT else CUSTOMER
    try:
        with record_lock(deps, key, event_id=command.event_id, link=(entity, record_id)) as (finished, record_deps):
            covered_from = record_deps.store.last_synced_from(key)
            if command.received_at is not None and covered_from is not None \
                    and covered_from > command.received_at + timedelta(seconds=deps.coalesce_margin):
                log.info("%s: event %s is covered by a sync begun after it", key, command.event_id)
                record_deps.store.mark_processed(command.event_id, "coalesced")
                result = SyncResult("coalesced", None, module, record_id)
            else:
                result = _sync_record(command, kind, record_deps)
                finished()
            if attempt is not None:
                record_deps.store.log(attempt(result))
            return result
    except _AlreadyProcessed:
        log.info("event %s already processed; nothing to do", command.event_id)
        result = SyncResult("duplicate", None, module, record_id)
        if attempt is not None:
            deps.store.log(attempt(result))
        return result


def _note_deleted(command: SyncCrmRecordToAmeise, entity: str, deps: SyncDependencies) -> None:
    """A record the CRM no longer has: into the list of deleted records (a delete event names the time it came)."""
    if deps.deleted is None:
        return
    now = deps.now()
    said_deleted = (command.operation or "").lower() == "delete"
    new = deps.deleted.note_deleted([DeletedCrmRecord(
        module=command.module, record_id=command.record_id,
        deleted_at=(command.received_at or now) if said_deleted else None, seen_at=now,
        source="delete event" if said_deleted else "sync")])
    if new and deps.deleted_policy == "report":
        log.warning("%s/%s was deleted in the CRM; Ameise keeps it (`syncbridge sweep deleted`)",
                    command.module, command.record_id)
        deps.store.log(_entry("deleted_in_crm", "error", entity, command.module, command.record_id, None,
                              command.event_id, error="deleted in the CRM; Ameise keeps it (policy: report)"))


def _sync_record(command: SyncCrmRecordToAmeise, kind: str, deps: SyncDependencies) -> SyncResult:
    module, record_id = command.module, command.record_id
    record = deps.crm.get_record(module, record_id)
    if record is None:
        entity = CONTRACT if kind == CONTRACT else CUSTOMER
        deps.store.log(_entry("skipped", "ok", entity, module, record_id, None, command.event_id,
                              details={"reason": "record not found in the CRM (deleted?)"}))
        _note_deleted(command, entity, deps)
        deps.store.mark_processed(command.event_id, "skipped")
        return SyncResult("skipped", entity, module, record_id)

    if kind == CONTRACT:
        result = _sync_contract(module, record, command.event_id, deps)
    else:
        result = _sync_customer(kind, module, record, command.event_id, deps)
    deps.store.mark_processed(command.event_id, result.action)
    return result


# ---------------------------------------------------------------- customers
# Parts of the mapped customer written through their own sub-resources, not with the customer itself.
ADDRESS, CONTACTS = "Hauptwohnsitz", "Kontaktdaten"


def _sync_customer(kind: str, module: str, record: dict[str, Any], event_id: str, deps: SyncDependencies) -> SyncResult:
    """Create or update a customer: the customer, its main address and its contact data, one logical write.

    Ameise takes them in up to three kinds of calls.  Should a later call fail, the
    message is retried and the retry finishes the job: the link to the customer
    is saved right after its create, the create note stays until every part is
    written, and contact entries are matched by Typ and Kontext, so none is
    added twice.  The activity log gets one entry listing the calls made.
    """
    record_id = str(record["id"])
    key = f"{module}/{record_id}"
    body = _map(deps, kind, record)
    own = {name: value for name, value in body.items() if name not in (ADDRESS, CONTACTS)}
    address: dict[str, Any] | None = body.get(ADDRESS)
    contacts: list[dict[str, Any]] = list(body.get(CONTACTS) or [])
    carried = _text(record.get(deps.kundennummer_field))
    _refuse_claimed_number(deps, CUSTOMER, module, record_id, carried, deps.kundennummer_field)
    number = carried or _linked(deps, CUSTOMER, record_id)
    calls: list[str] = []

    current = deps.ameise.get_customer(number) if number else None
    if current is not None:
        # A create whose later parts failed is finished here by its retry.
        action = "created" if deps.store.create_under_way(key) else "updated"
        deps.ameise.update_customer(number, own)
        calls.append(f"PUT kunden/{number}")
    else:
        if number:
            log.warning("%s names Kundennummer %s, which Ameise does not know: creating a new customer", key, number)
        action = "created"
        found = _interrupted_create(deps, key, CUSTOMER, body, lambda: _customer_candidates(deps, body))
        if found:
            number = found
            deps.ameise.update_customer(number, own)
            calls.append(f"PUT kunden/{number}")
            current = deps.ameise.get_customer(number) or {}
        else:
            deps.store.note_create(key, True)
            number = deps.ameise.create_customer({**own, CONTACTS: contacts} if contacts else own)
            calls.append("POST kunden")
            current = {CONTACTS: contacts}
    # The link is saved before the other parts and the write-back: should one of
    # them fail, a retry finds the link and updates instead of creating a second customer.
    _save_link(deps, CUSTOMER, module, record_id, number, deps.kundennummer_field)
    if address:
        deps.ameise.set_main_address(number, address)
        calls.append(f"PUT kunden/{number}/adressen/0")
    calls += _write_contacts(deps, number, current.get(CONTACTS) or [], contacts)
    deps.store.note_create(key, False)
    _remember_echo(deps, kind, CUSTOMER, number, body)
    deps.store.log(_entry(action, "ok", CUSTOMER, module, record_id, number, event_id,
                          details={"kind": kind, "fields": _paths(body), "calls": calls, "read": bounded(record),
                                   "written": bounded(body)}))
    written_back = _write_back(deps, module, record_id, deps.kundennummer_field, carried, number, CUSTOMER, event_id)
    return SyncResult(action, CUSTOMER, module, record_id, number, written_back)


def _write_contacts(deps: SyncDependencies, number: str, existing: list[dict[str, Any]],
                    wanted: list[dict[str, Any]]) -> list[str]:
    """Bring the wanted contact entries into Ameise, each matched by Typ and Kontext; return the calls made."""
    calls = []
    for entry in wanted:
        same = [e for e in existing if (e.get("Typ"), e.get("Kontext")) == (entry.get("Typ"), entry.get("Kontext"))]
        if not same:
            deps.ameise.add_contact(number, entry)
            calls.append(f"POST kunden/{number}/kontaktdaten ({entry.get('Typ')}, {entry.get('Kontext')})")
        elif not any(e.get("Value") == entry.get("Value") for e in same):
            contact_id = str(same[0].get("Id"))
            deps.ameise.update_contact(number, contact_id, entry)
            calls.append(f"PUT kunden/{number}/kontaktdaten/{contact_id} ({entry.get('Typ')}, {entry.get('Kontext')})")
    return calls


def _paths(body: dict[str, Any], prefix: str = "") -> list[str]:
    """The leaf fields a mapped body sets, as paths (``Person.Vorname``, ``Kontaktdaten[Kontext=privat,Typ=email]``)."""
    paths: list[str] = []
    for name, value in body.items():
        if isinstance(value, dict):
            paths += _paths(value, f"{prefix}{name}.")
        elif isinstance(value, list):
            paths += [f"{prefix}{name}[Kontext={e.get('Kontext')},Typ={e.get('Typ')}]" for e in value if isinstance(e, dict)]
        else:
            paths.append(prefix + name)
    return sorted(paths)


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
        with record_lock(deps, f"{customer_module}/{customer_id}", link=(CUSTOMER, customer_id)) \
                as (finished, customer_deps):
            linked = _linked(customer_deps, CUSTOMER, customer_id)
            if linked:
                return linked
            customer = customer_deps.crm.get_record(customer_module, customer_id)
            if customer is None:
                raise RecordRejected(f"the contract's customer {customer_module}/{customer_id} is not in the CRM",
                                     field=lookup_field)
            number = _sync_customer(kind, customer_module, customer, event_id, customer_deps).ameise_id or ""
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
    _remember_echo(deps, CONTRACT, CONTRACT, number, body)
    deps.store.log(_entry(action, "ok", CONTRACT, module, record_id, number, event_id,
                          details={"kunde": body["Kunde"], "fields": _paths(body), "read": bounded(record),
                                   "written": bounded(body)}))
    written_back = _write_back(deps, module, record_id, deps.vertragsnummer_field, carried, number, CONTRACT, event_id)
    return SyncResult(action, CONTRACT, module, record_id, number, written_back)


# ---------------------------------------------------------------- creating exactly once
# The fields a record created by an earlier, interrupted attempt must share with the body.  A customer
# is compared with the search hits (KundenSuchErgebnis: Id, Text, Person, Hauptwohnsitz), so by its Person.
CREATED_MATCH = {
    CUSTOMER: ("Person.Typ", "Person.Vorname", "Person.Nachname", "Person.Firmenname", "Person.Geburtsdatum"),
    CONTRACT: ("Kunde", "Sparte", "Gesellschaft", "Versicherungsscheinnummer", "Antragsnummer", "Laufzeit.Beginn"),
}


def _interrupted_create(deps: SyncDependencies, key: str, entity: str, body: dict[str, Any],
                        candidates: Callable[[], list[dict[str, Any]]]) -> str | None:
    """The number of what an earlier attempt that died after sending its create made, if it reached Ameise.

    Ameise takes no idempotency key, so a create is noted (under the record's
    lease) before it is sent and cleared once the record is written.  Found still
    noted, the earlier create may have reached Ameise: a record matching the
    body that no CRM record is linked to is that one.
    """
    if not deps.store.create_under_way(key):
        return None
    fields = [f for f in CREATED_MATCH[entity] if _read(body, f) not in (None, "")]
    matches = [c for c in candidates()
               if all(str(_read(c, f) or "") == str(_read(body, f)) for f in fields)
               and deps.store.find_link(entity, ameise_id=str(c.get("Id"))) is None]
    if not matches:
        return None
    number = str(max(matches, key=lambda c: str(c.get("Id")))["Id"])
    log.warning("%s: an interrupted earlier create reached Ameise as %s; updating it, not creating again", key, number)
    return number


def _create_once(deps: SyncDependencies, key: str, entity: str, body: dict[str, Any],
                 create: Callable[[dict[str, Any]], str], update: Callable[[str, dict[str, Any]], None],
                 candidates: Callable[[], list[dict[str, Any]]]) -> str:
    """Create the record in Ameise, unless an earlier attempt that died after sending its create made it."""
    found = _interrupted_create(deps, key, entity, body, candidates)
    if found:
        update(found, body)
        return found
    deps.store.note_create(key, True)
    return create(body)


def _customer_candidates(deps: SyncDependencies, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Customers Ameise finds by the body's e-mail address (``mail=``), else by its name (``q=``)."""
    mail = next((e.get("Value") for e in body.get(CONTACTS) or [] if e.get("Typ") == "email" and e.get("Value")), None)
    if mail:
        return deps.ameise.search_customers({"mail": mail})
    person = body.get("Person") or {}
    name = person.get("Firmenname") or " ".join(filter(None, (person.get("Vorname"), person.get("Nachname"))))
    return deps.ameise.search_customers({"q": name}) if name else []


def _read(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


# ---------------------------------------------------------------- shared steps
def _remember_echo(deps: SyncDependencies, kind: str, entity: str, number: str, body: dict[str, Any]) -> None:
    """Mark what was just written to Ameise: the next DailyUp brings it back, and it is no news for the CRM."""
    if deps.echoes is not None:
        deps.echoes.remember_echo(entity, number, deps.mapping.as_dailyup(kind).as_dailyup(body))


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
