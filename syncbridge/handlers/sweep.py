"""Nothing missed: the catch-up sweep and the backfill of CRM records.

A webhook that never reached the receiver is lost to the event path.  The sweep
lists, every few minutes, the records of each synced module modified since its
watermark (minus an overlap), and queues a ``CrmRecordChanged`` (source
``sweep``) for each one modified after its last finished sync; Zoho's list of
failed webhook calls is a second source.  The backfill queues every record
(source ``backfill``), page by page, resumable.  Both go through the same queue
as the webhooks, so the CRM -> Ameise worker coalesces them with webhook events
of the same record as it always does.

Bulk work is held to a share of the daily Zoho credit budget and to a number of
calls in flight (:class:`BulkThrottle`); the event-driven syncs never wait for it.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.events import CrmRecordChangedSchema
from syncbridge.errors import Rejected
from syncbridge.messages import CrmRecordChanged, crm_record_changed_key
from syncbridge.ports import (
    BACKFILL_PURPOSE,
    CRM_TO_AMEISE,
    SWEEP_PURPOSE,
    ActivityEntry,
    BackfillProgress,
    CreditLedger,
    CrmClient,
    DeletedCrmRecord,
    Publisher,
    Store,
    SweepState,
    Topology,
    aware_time,
)

log = logging.getLogger(__name__)

SWEEP_LEASE, BACKFILL_LEASE = "sweep", "backfill"
SWEEP_SOURCE, BACKFILL_SOURCE, FAILURE_SOURCE = "sweep", "backfill", "sweep:webhook-failure"
SWEEP_INTERVALS = (0, 5, 15, 60)           # minutes; 0 = off
DELETED_POLICIES = ("ignore", "report")
LIST_FIELDS = ("Modified_Time",)           # the id comes with every record; one field of the 50 allowed
FIRST_LOOKBACK = timedelta(hours=24)       # a module never swept is looked at this far back
BULK_PURPOSES = (BACKFILL_PURPOSE, SWEEP_PURPOSE)
DAY = timedelta(hours=24)
# A queued record costs its sync about one credit (the full record is read once).
SYNC_CREDITS_PER_RECORD = 1
PAGE_SIZE = 200                            # records per list call


class BulkStopped(Exception):
    """The bulk work was asked to stop (shutdown) while it waited."""


class LeaseLost(Exception):
    """Another process took the lease over (ours ran out): this run stops without moving the watermark."""


# ---------------------------------------------------------------- the throttle
@dataclass
class BulkThrottle:
    """Holds backfill and sweep to a share of the daily credit budget and to ``concurrency`` calls in flight.

    Before each bulk call it asks the ledger what backfill and sweep spent in the
    last 24 h, plus the credits the syncs of the records this process queued will
    cost.  Below ``slow_from`` of the allowed share it lets the call go; above it,
    it waits before each call, longer the closer the share is; at the share it
    pauses, looking again every ``pause_check`` seconds.  Event-driven syncs do
    not pass through here and are never held back.
    """

    ledger: CreditLedger | None
    daily_credits: int
    share: float
    concurrency: int = 5
    slow_from: float = 0.8                 # of the allowed share: from here on, calls are spaced out
    max_delay: float = 5.0                 # seconds between calls just below the share
    pause_check: float = 60.0              # seconds between two looks while paused
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sleep: Callable[[float], Any] = time.sleep
    should_stop: Callable[[], bool] = lambda: False
    on_pause: Callable[[int, int], None] | None = None
    _slots: threading.BoundedSemaphore = field(init=False, repr=False)
    _queued: deque[tuple[datetime, int]] = field(init=False, repr=False, default_factory=deque)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)
    waited: float = 0.0                    # seconds spent slowed down or paused
    pauses: int = 0

    def __post_init__(self) -> None:
        self._slots = threading.BoundedSemaphore(max(1, self.concurrency))

    @property
    def allowed(self) -> int:
        """Credits bulk work may spend per 24 h."""
        return int(self.daily_credits * self.share)

    def spent(self) -> int:
        """Credits of bulk work in the last 24 h: its own calls, and the syncs of what it queued."""
        now = self.now()
        with self._lock:
            while self._queued and self._queued[0][0] < now - DAY:
                self._queued.popleft()
            queued = sum(credits for _, credits in self._queued)
        used = self.ledger.used(now - DAY, purposes=BULK_PURPOSES) if self.ledger is not None else 0
        return used + queued

    def note_queued(self, records: int) -> None:
        """Count the syncs ``records`` queued records will cost."""
        if records:
            with self._lock:
                self._queued.append((self.now(), records * SYNC_CREDITS_PER_RECORD))

    def delay(self, spent: int) -> float | None:
        """Seconds to wait before the next call at ``spent``; None: paused (the share is spent)."""
        allowed = self.allowed
        if spent >= allowed:
            return None
        start = allowed * self.slow_from
        if spent < start:
            return 0.0
        return self.max_delay * (spent - start) / max(1.0, allowed - start)

    def wait_turn(self) -> None:
        """Wait until the budget lets the next bulk call go; BulkStopped when asked to stop meanwhile."""
        paused = False
        while True:
            if self.should_stop():
                raise BulkStopped()
            spent = self.spent()
            wait = self.delay(spent)
            if wait is not None:
                if paused:
                    log.info("bulk work resumes: %d of %d credits of its 24 h share spent", spent, self.allowed)
                if wait > 0:
                    self.waited += wait
                    self.sleep(wait)
                    if self.should_stop():
                        raise BulkStopped()
                return
            if not paused:
                paused = True
                self.pauses += 1
                log.warning("bulk work paused: %d of %d credits of its 24 h share spent (%.0f %% of %d)",
                            spent, self.allowed, self.share * 100, self.daily_credits)
                if self.on_pause is not None:
                    self.on_pause(spent, self.allowed)
            self.waited += self.pause_check
            self.sleep(self.pause_check)

    @contextmanager
    def call(self) -> Iterator[None]:
        """One bulk call: its turn in the budget, then one of ``concurrency`` slots while it runs."""
        self.wait_turn()
        with self._slots:
            yield


# ---------------------------------------------------------------- dependencies and results
@dataclass
class SweepDependencies:
    """What the sweep and the backfill need, built by :mod:`syncbridge.bootstrap`."""

    crm: CrmClient
    state: SweepState
    store: Store
    publisher: Publisher
    topology: Topology
    modules: Sequence[str]
    throttle: BulkThrottle
    overlap: float = 120.0                 # seconds looked back before the watermark
    coalesce_margin: float = 1.0           # as the CRM -> Ameise worker's
    lease_ttl: float = 300.0               # renewed with every page
    deleted_policy: str = "ignore"
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    should_stop: Callable[[], bool] = lambda: False
    progress: Callable[[str, str, int, int | None], None] | None = None  # (stage, module, done, total)
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class ModuleSweep:
    """What one sweep found in one module."""

    module: str
    since: datetime
    listed: int = 0                        # records modified since the watermark (minus overlap)
    queued: int = 0                        # of them, modified after their last finished sync
    up_to_date: int = 0                    # of them, synced since their modification
    from_failures: int = 0                 # queued from Zoho's failed webhook calls
    deleted_new: int = 0                   # deleted records seen for the first time
    calls: int = 0


@dataclass
class SweepResult:
    """One sweep: ``done``, or ``busy`` when another process held the lease."""

    state: str
    started: datetime | None = None
    modules: list[ModuleSweep] = field(default_factory=list)
    holder: str | None = None

    @property
    def queued(self) -> int:
        return sum(m.queued + m.from_failures for m in self.modules)

    @property
    def calls(self) -> int:
        return sum(m.calls for m in self.modules)


@dataclass
class BackfillResult:
    """One backfill run: ``done``, ``stopped`` (resumable), or ``busy``."""

    state: str
    modules: list[BackfillProgress] = field(default_factory=list)
    up_to_date: int = 0
    calls: int = 0

    @property
    def queued(self) -> int:
        return sum(p.queued for p in self.modules)


# ---------------------------------------------------------------- the sweep
def run_sweep(deps: SweepDependencies) -> SweepResult:
    """One catch-up sweep of every synced module; the watermark of a module moves once all of it is queued."""
    state = deps.state
    if not state.take_lease(SWEEP_LEASE, deps.owner, deps.lease_ttl):
        holder = state.lease_holder(SWEEP_LEASE)
        log.info("a sweep is under way in another process; this one is skipped")
        return SweepResult("busy", holder=holder[0] if holder else None)
    started = deps.now()
    result = SweepResult("done", started=started)
    overlap = timedelta(seconds=deps.overlap)
    try:
        sinces = {m: (state.watermark(m) or started - FIRST_LOOKBACK) - overlap for m in deps.modules}
        failures = _webhook_failures(deps, min(sinces.values())) if sinces else {}
        for module in deps.modules:
            found = ModuleSweep(module, sinces[module])
            result.modules.append(found)
            _sweep_module(deps, found, failures.get(module.lower(), []))
            # Everything of the module modified up to ``started`` is queued now.
            state.set_watermark(module, started)
            if deps.progress:
                deps.progress("sweep", module, found.queued + found.from_failures, found.listed)
    finally:
        state.release_lease(SWEEP_LEASE, deps.owner)
    log.info("sweep: %d record(s) queued in %d call(s): %s", result.queued, result.calls,
             ", ".join(f"{m.module} {m.queued}+{m.from_failures} of {m.listed}" for m in result.modules))
    return result


def _sweep_module(deps: SweepDependencies, found: ModuleSweep, failures: list[dict[str, Any]]) -> None:
    queued: set[str] = set()
    cursor: str | None = None
    while True:
        _renew(deps, SWEEP_LEASE)
        with deps.throttle.call():
            page = deps.crm.records_page(found.module, LIST_FIELDS, cursor=cursor, modified_since=found.since)
        found.calls += 1
        found.listed += len(page.records)
        events = []
        for record in page.records:
            record_id = str(record.get("id") or "")
            if not record_id or record_id in queued:
                continue
            if _up_to_date(deps, found.module, record_id, aware_time(record.get("Modified_Time"))):
                found.up_to_date += 1
                continue
            queued.add(record_id)
            events.append(_event(SWEEP_SOURCE, found.module, record_id, deps.now(), record.get("Modified_Time")))
        _publish(deps, events)
        found.queued += len(events)
        cursor = page.next_cursor
        if cursor is None:
            break
    events = []
    for item in failures:
        record_id = str((item.get("entity_details") or {}).get("id") or "")
        failed = aware_time(item.get("failure_time"))
        if not record_id or record_id in queued or (failed is not None and failed < found.since):
            continue
        if _up_to_date(deps, found.module, record_id, failed):
            continue
        queued.add(record_id)
        events.append(_event(FAILURE_SOURCE, found.module, record_id, deps.now(), None))
    _publish(deps, events)
    found.from_failures = len(events)
    _note_deleted(deps, found)


def _webhook_failures(deps: SweepDependencies, since: datetime) -> dict[str, list[dict[str, Any]]]:
    """Zoho's failed webhook calls since ``since``, by module (lower case); none when Zoho refuses the list."""
    try:
        with deps.throttle.call():
            items = deps.crm.webhook_failures(since)
    except Rejected as exc:
        # Listing them needs a scope the connection may not have: the record lists still cover every change.
        log.warning("Zoho's webhook failures cannot be read (%s); the sweep relies on the record lists", exc)
        return {}
    by_module: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        module = str((item.get("entity_details") or {}).get("module") or "")
        by_module.setdefault(module.lower(), []).append(item)
    return by_module


def _note_deleted(deps: SweepDependencies, found: ModuleSweep) -> None:
    """Remember the module's records deleted since the watermark; report the new ones when the policy says so."""
    with deps.throttle.call():
        rows = deps.crm.deleted_records(found.module)
    found.calls += 1
    seen = deps.now()
    records = []
    for row in rows:
        deleted_at = aware_time(row.get("deleted_time"))
        if row.get("id") and (deleted_at is None or deleted_at >= found.since):
            records.append(DeletedCrmRecord(module=found.module, record_id=str(row["id"]), deleted_at=deleted_at,
                                            seen_at=seen, name=str(row.get("display_name") or ""),
                                            source=SWEEP_SOURCE))
    found.deleted_new = deps.state.note_deleted(records) if records else 0
    if found.deleted_new and deps.deleted_policy == "report":
        log.warning("%s: %d record(s) deleted in the CRM since the last sweep (`syncbridge sweep deleted`)",
                    found.module, found.deleted_new)
        deps.store.log(ActivityEntry(
            direction=CRM_TO_AMEISE, action="deleted_in_crm", result="error", zoho_module=found.module,
            error=f"{found.deleted_new} record(s) deleted in the CRM; Ameise keeps them (policy: report)",
            details={"ids": [r.record_id for r in records][:100]}))


def _up_to_date(deps: SweepDependencies, module: str, record_id: str, modified: datetime | None) -> bool:
    """Whether a finished sync of the record began after ``modified`` (Zoho gives whole seconds)."""
    if modified is None:
        return False
    synced_from = deps.store.last_synced_from(f"{module}/{record_id}")
    return synced_from is not None and \
        synced_from > modified + timedelta(seconds=1 + deps.coalesce_margin)


# ---------------------------------------------------------------- the backfill
def run_backfill(deps: SweepDependencies, modules: Sequence[str] | None = None, *, restart: bool = False,
                 force: bool = False) -> BackfillResult:
    """Queue every record of ``modules`` (default: all synced), page by page; a stopped run resumes where it was.

    ``restart`` begins again from the first page; ``force`` queues records whose
    last sync began after their last change too (else they are counted as up to date).
    """
    state = deps.state
    if not state.take_lease(BACKFILL_LEASE, deps.owner, deps.lease_ttl):
        return BackfillResult("busy")
    result = BackfillResult("done")
    try:
        for module in modules or deps.modules:
            progress = state.backfill(module)
            if restart or progress is None:
                progress = BackfillProgress(module=module, started_at=deps.now())
                state.save_backfill(progress)
            if not progress.finished:
                progress = _backfill_module(deps, progress, result, force)
            result.modules.append(progress)
            if not progress.finished:
                result.state = "stopped"
                break
    except BulkStopped:
        result.state = "stopped"
    finally:
        state.release_lease(BACKFILL_LEASE, deps.owner)
    return result


def _backfill_module(deps: SweepDependencies, progress: BackfillProgress, result: BackfillResult,
                     force: bool) -> BackfillProgress:
    module = progress.module
    while not progress.finished:
        if deps.should_stop():
            return progress
        _renew(deps, BACKFILL_LEASE)
        try:
            with deps.throttle.call():
                page = deps.crm.records_page(module, LIST_FIELDS, cursor=progress.cursor)
        except Rejected:
            if not (progress.cursor or "").startswith("token:"):
                raise
            # Zoho's page tokens expire after a day: begin the module again (records synced since are skipped).
            log.warning("%s: the backfill's page token ran out; reading the module again from its first page", module)
            progress = replace(progress, cursor=None)
            continue
        result.calls += 1
        events = []
        for record in page.records:
            record_id = str(record.get("id") or "")
            if not record_id:
                continue
            if not force and _up_to_date(deps, module, record_id, aware_time(record.get("Modified_Time"))):
                result.up_to_date += 1
                continue
            events.append(_event(BACKFILL_SOURCE, module, record_id, deps.now(), record.get("Modified_Time")))
        _publish(deps, events)
        progress = replace(progress, cursor=page.next_cursor, queued=progress.queued + len(events),
                           pages=progress.pages + 1, finished=page.next_cursor is None, updated_at=deps.now())
        deps.state.save_backfill(progress)
        if deps.progress:
            deps.progress("backfill", module, progress.queued, None)
    return progress


def estimate_credits(records: int) -> dict[str, int]:
    """API credits a backfill of ``records`` records costs: its list calls, and the syncs that read each record."""
    listing = -(-records // PAGE_SIZE) if records else 1
    return {"listing": listing, "syncs": records * SYNC_CREDITS_PER_RECORD,
            "total": listing + records * SYNC_CREDITS_PER_RECORD}


# ---------------------------------------------------------------- helpers
_schema = CrmRecordChangedSchema()


def _event(source: str, module: str, record_id: str, at: datetime, modified_time: Any) -> CrmRecordChanged:
    return CrmRecordChanged(event_id=str(uuid.uuid4()), source=source, module=module, record_id=record_id,
                            received_at=at, operation=None,
                            modified_time=modified_time if isinstance(modified_time, str) else None)


def _publish(deps: SweepDependencies, events: list[CrmRecordChanged]) -> None:
    """Queue ``events`` as the receiver does (contract-checked, confirmed by the broker)."""
    if not events:
        return
    messages = []
    for event in events:
        body = _schema.dump(event)
        errors = _schema.validate(body)
        if errors:      # a record id Zoho would never send: not queued, said so
            log.error("record %s/%s not queued: %s", event.module, event.record_id, errors)
            continue
        messages.append((crm_record_changed_key(event.module), body, event.event_id))
    deps.publisher.publish_many(deps.topology.crm_exchange(*(key for key, _, _ in messages)), messages)
    deps.throttle.note_queued(len(messages))


def _renew(deps: SweepDependencies, lease: str) -> None:
    if not deps.state.take_lease(lease, deps.owner, deps.lease_ttl):
        raise LeaseLost(f"the {lease} lease was taken over by another process")


def count_records(deps: SweepDependencies, modules: Sequence[str] | None = None) -> dict[str, int]:
    """How many records each module has (read page by page, 1 credit per 200 records), for an estimate."""
    counts: dict[str, int] = {}
    for module in modules or deps.modules:
        counts[module], cursor = 0, None
        while True:
            with deps.throttle.call():
                page = deps.crm.records_page(module, LIST_FIELDS, cursor=cursor)
            counts[module] += len(page.records)
            cursor = page.next_cursor
            if cursor is None:
                break
    return counts
