"""Take a DailyUp delivery in: store it, compute its delta against the snapshot, publish the delta.

A delivery is applied in ONE transaction.  Each row's raw digest (its text, the
volatile columns aside) is compared with the one stored for its key: a row delivered
as it was is only counted; the others are validated and streamed into staging in
batches, compared with the snapshot in SQL, and the snapshot, the outbox of deltas
and the import record are written together.  A delivery found broken half-way
(:class:`~syncbridge.dailyup.reader.DeliveryRejected`) therefore changes nothing but
its import record, which says why it was rejected; one stopped half-way (``should_stop``,
when the process shuts down) changes nothing at all and is taken again next time.
After the commit the outbox is published in id order, up to 100 deltas to a message
(``ameise.deltas``), with publisher confirms; what
the broker did not confirm waits there for :meth:`DailyUpImporter.publish_pending`.
"""
from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from operator import itemgetter
from pathlib import Path
from typing import Any, cast

from contracts.events import AmeiseRecordChangedSchema, ameise_deltas_body, ameise_record_changed_plain_body_of
from syncbridge.dailyup.reader import Delivery, DeliveryRejected, ReadingStopped, open_delivery, sha256_of
from syncbridge.deliveries import (
    CONTRACTS,
    CUSTOMERS,
    ENTITY_OF,
    KEY_OF,
    LOOKUP_OF_COLUMN,
    LOOKUP_TABLES,
    VOLATILE_COLUMNS,
    DeliveryName,
    ParsedRow,
    RowError,
    changed_fields,
    in_column_order,
    row_text,
)
from syncbridge.errors import Unavailable
from syncbridge.messages import AMEISE_DELTAS_KEY, DELTAS_PER_MESSAGE, AmeiseRecordChanged, ameise_record_changed_key
from syncbridge.ports import (
    CONTRACT_VIOLATION,
    Candidate,
    DailyUpStore,
    ImportSession,
    PendingDelta,
    Publisher,
    Topology,
    dead_letter_headers,
)

log = logging.getLogger("syncbridge.dailyup")

# Lookup lists first, so echoes compare with this delivery's texts; customers before contracts, so
# the delta of a new contract never overtakes its new customer's.
TABLE_ORDER = (*LOOKUP_TABLES, CUSTOMERS, CONTRACTS)
STAGE_BATCH = 2000          # rows per insert into staging
DIFF_PAGE = 5000            # rows per page of the comparison
PUBLISH_BATCH = 1000        # deltas per read of the outbox, sent as one window of confirms (and per "mark published")
PROGRESS_EVERY = 10_000     # rows between two progress reports while reading
MAX_STORED_ERRORS = 10_000  # row errors kept per import; all are counted
SAMPLES = 5                 # examples per kind of delta in a result
MAX_KEY = 64                # length of the key columns of the DailyUp tables
YOUNG_OBJECTS = 20_000      # new objects between two runs of Python's cycle collector while importing
NEW_ROWS_SLICE = 250        # new rows per insert into the snapshot (one COPY takes them all on PostgreSQL)

_collector_lock = threading.Lock()
_collector_users = 0
_collector_thresholds: tuple[int, int, int] = (0, 0, 0)


@contextmanager
def _collecting_seldom() -> Iterator[None]:
    """Run Python's cycle collector seldom while a delivery is read, compared or published.

    An import makes millions of short-lived objects and hardly any reference cycles, yet
    by default each 700 new objects start a collection, and now and then a full one over
    everything alive: about a tenth of the importer's CPU on a first day of 1M rows.
    Collections stay on (garbage with cycles is still freed), at one per
    ``YOUNG_OBJECTS`` new objects.  The thresholds are the process's: imports in several
    threads share this, the last one out restores them.
    """
    global _collector_users, _collector_thresholds
    with _collector_lock:
        if not _collector_users:
            _collector_thresholds = gc.get_threshold()
            young, *older = _collector_thresholds
            if young:   # 0: the collector is off, and stays so
                gc.set_threshold(max(young, YOUNG_OBJECTS), *older)
        _collector_users += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_users -= 1
            if not _collector_users:
                gc.set_threshold(*_collector_thresholds)


_schema = AmeiseRecordChangedSchema()


@dataclass
class ImportResult:
    """What became of a delivery (or, for a dry run, what would)."""

    import_id: int | None
    state: str                  # accepted, published, duplicate, superseded, rejected
    message: str
    rows: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    deltas: dict[str, int] = field(default_factory=dict)
    published: int = 0
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)   # "customer.changed" -> [{key, changed_fields}]


class _Tally:
    """Counts of one import as it goes, kept outside its transaction for the rejection record."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self.errors = 0
        self.erroneous_keys = 0
        self.deltas: Counter[str] = Counter()
        self.samples: dict[str, list[dict[str, Any]]] = {}
        self.timings: dict[str, float] = {}
        self.keyed: dict[str, int] = {}             # rows with a key per table, valid or not
        self.staged: dict[str, int] = {}            # valid rows per table put in staging
        self.vanished: dict[str, list[str]] = {}    # keys of the snapshot no row of the delivery has
        self.created: dict[str, list[tuple[str, str]]] = {}   # (kind, key) of rows stored while reading

    def delta(self, kind: str, key: str, fields: list[str] | None = None) -> None:
        self.deltas[kind] += 1
        examples = self.samples.setdefault(kind, [])
        if len(examples) < SAMPLES:
            examples.append({"key": key, "changed_fields": list(fields or [])})

    def result(self, import_id: int | None, state: str, message: str = "") -> ImportResult:
        return ImportResult(import_id, state, message, dict(self.rows), self.errors, dict(self.deltas),
                            samples={k: list(v) for k, v in self.samples.items()})


class DailyUpImporter:
    """Import deliveries into the DailyUp store and publish their deltas to the return queue."""

    def __init__(self, store: DailyUpStore, *, publisher: Publisher | None = None, topology: Topology | None = None,
                 reader_options: dict[str, Any] | None = None,
                 progress: Callable[[str, int, int | None], None] | None = None) -> None:
        if publisher is not None and topology is None:
            raise ValueError("a publisher needs the topology it publishes to")
        self.store = store
        self.publisher = publisher
        self.topology = topology
        self.reader_options = dict(reader_options or {})
        self.progress = progress or (lambda stage, done, total: None)

    # ------------------------------------------------------------------ API
    def import_file(self, path: str | os.PathLike[str], *, source: str = "cli", file_name: str | None = None,
                    should_stop: Callable[[], bool] | None = None) -> ImportResult:
        """Import one delivery and publish its deltas (when this importer has a publisher).

        When ``should_stop`` answers true while the delivery is read or compared, the
        import is rolled back and :class:`~syncbridge.dailyup.reader.ReadingStopped` raised.
        """
        result = self._take(Path(path), source=source, file_name=file_name, dry_run=False, should_stop=should_stop)
        if result.state != "accepted" or self.publisher is None:
            return result
        waiting = self.store.count_unpublished()
        try:
            result.published = self.publish_pending()
        except Unavailable as exc:
            # The deltas are committed in the outbox: nothing is lost, the next round publishes them.
            log.warning("publishing the deltas of import %s failed: %s", result.import_id, exc)
            result.published = waiting - self.store.count_unpublished()
            result.message = f"{exc}; the deltas wait in the outbox"
        current = self.store.get_import(result.import_id) if result.import_id is not None else None
        if current is not None:
            result.state = current.state
        return result

    def diff(self, path: str | os.PathLike[str], *, file_name: str | None = None) -> ImportResult:
        """Tell what importing would change (counts and samples); store and publish nothing (a dry run)."""
        return self._take(Path(path), source="cli", file_name=file_name, dry_run=True)

    def publish_pending(self) -> int:
        """Publish the outbox in id order with publisher confirms; return how many were published.

        A delta is marked published only after the broker confirmed it.  While a batch is
        sent, a second connection reads the next batch, whose messages are built and
        checked meanwhile, and marks the one confirmed before (one UPDATE each), so the
        broker's round trips, the database's and the making of the messages overlap.  A
        crash in between leaves confirmed deltas unmarked: they are sent again, never lost.
        """
        if self.publisher is None or self.topology is None:
            return 0
        with _collecting_seldom():
            return self._publish_pending(self.publisher, self.topology)

    def _publish_pending(self, publisher: Publisher, topology: Topology) -> int:
        total = self.store.count_unpublished()
        done = 0
        if total:
            self.progress("publish", 0, total)

        def prepared(after: int) -> _Batch:
            return _checked(self.store.unpublished_deltas(PUBLISH_BATCH, after))

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dailyup-outbox") as outbox:
            marking: Future[None] | None = None
            batch = prepared(0)
            while batch.deltas:
                following = outbox.submit(prepared, batch.deltas[-1].id)
                self._dead_letter(batch.refused, publisher, topology)
                try:
                    # One window a batch: one wait for the broker's confirms, not one per message.
                    publisher.publish_many(topology.deltas, batch.messages, window=len(batch.messages) or 1)
                except Unavailable as exc:
                    # The first ``confirmed`` messages of the batch reached the broker: do not send them again.
                    confirmed = getattr(exc, "confirmed", None) or 0
                    if marking is not None:
                        marking.result()
                    self.store.mark_published((d.id for d in batch.confirmed(confirmed)), settle=False)
                    raise
                if marking is not None:
                    marking.result()
                marking = outbox.submit(self.store.mark_published, [d.id for d in batch.sent], settle=False)
                done += len(batch.deltas)
                self.progress("publish", done, total)
                batch = following.result()
            if marking is not None:
                marking.result()
        # An accepted import without deltas has an empty outbox too: that makes it "published".
        self.store.mark_published(())
        return done

    def _dead_letter(self, refused: list[tuple[PendingDelta, str, Any, Any]], publisher: Publisher,
                     topology: Topology) -> None:
        """Send deltas that violate the contract to the dead letters (and off the outbox), never to the CRM."""
        for d, routing_key, body, errors in refused:
            # Never sent as it is: the dead letters keep it with the reason, for a replay after the fix.
            log.error("delta %s violates AmeiseRecordChanged v1: %s", d.delta_id, errors)
            reason = f"contract AmeiseRecordChanged v1 violated: {errors}"
            publisher.publish(topology.dead, routing_key, body, message_id=d.delta_id,
                              headers=dead_letter_headers({}, topology.events.name, routing_key, reason,
                                                          CONTRACT_VIOLATION))
            self.store.mark_published([d.id], settle=False)

    # ------------------------------------------------------------------ one delivery
    def _take(self, path: Path, *, source: str, file_name: str | None, dry_run: bool,
              should_stop: Callable[[], bool] | None = None) -> ImportResult:
        file_name = Path(file_name or path.name).name
        tally = _Tally()
        delivery: Delivery | None = None
        try:
            with _collecting_seldom(), self.store.session(dry_run=dry_run) as session:
                # The customers' stored digests (the first table read, every delivery has it) are read while
                # the delivery is opened and checked: under the import lock, so no other import changes them.
                session.lock(then=CUSTOMERS)
                with open_delivery(path, file_name=file_name, should_stop=should_stop,
                                   **self.reader_options) as delivery:
                    return self._apply(session, delivery, source=source, tally=tally, dry_run=dry_run)
        except DeliveryRejected as exc:
            return self._reject(path, file_name, source, delivery, tally, str(exc), dry_run)
        except ReadingStopped:
            # No verdict on the delivery: its transaction is rolled back, it is taken again next time.
            log.info("import of %s stopped; nothing of it was applied", file_name)
            raise
        except Exception as exc:
            # Recorded for the status pages, then raised: the file stays where it is and is tried again.
            self._reject(path, file_name, source, delivery, tally, f"the import failed: {type(exc).__name__}: {exc}",
                         dry_run)
            raise

    def _apply(self, session: ImportSession, delivery: Delivery, *, source: str, tally: _Tally,
               dry_run: bool) -> ImportResult:
        started = time.monotonic()
        name = delivery.name
        known = session.find_import(delivery.sha256)
        if known is not None and known.state != "rejected":
            message = (f"already imported on {known.received_at:%d.%m.%Y %H:%M} UTC as import {known.id} "
                       f"({known.state})")
            return ImportResult(known.id, "duplicate", message, dict(known.rows), known.errors, dict(known.deltas))
        newest = session.newest_accepted(name.hauptvermittler)
        import_id = session.start_import(file_name=delivery.file_name, sha256=delivery.sha256,
                                         hauptvermittler=name.hauptvermittler, delivered_on=name.delivered_on,
                                         source=source)
        about = {"encodings": dict(delivery.encodings),
                 "extra_columns": {t: list(c) for t, c in delivery.extra_columns.items() if c}}
        if newest is not None and newest.delivered_on is not None and name.delivered_on < newest.delivered_on:
            message = (f"delivered on {name.delivered_on:%d.%m.%Y}, before the accepted delivery of "
                       f"{newest.delivered_on:%d.%m.%Y} (import {newest.id}): its rows are not applied")
            session.finish_import(import_id, state="superseded", message=message, **about)
            return tally.result(None if dry_run else import_id, "superseded", message)

        session.clear_staging()
        self._read(session, delivery, import_id, tally)
        read_at = time.monotonic()
        tally.timings["read"] = round(read_at - started, 3)
        self._diff(session, delivery, import_id, tally)
        tally.timings["diff"] = round(time.monotonic() - read_at, 3)
        session.clear_staging()
        session.finish_import(import_id, state="accepted", rows=tally.rows, errors=tally.errors,
                              deltas=dict(tally.deltas), timings=tally.timings, **about)
        return tally.result(None if dry_run else import_id, "accepted", "dry run: nothing was stored" if dry_run else "")

    def _reject(self, path: Path, file_name: str, source: str, delivery: Delivery | None, tally: _Tally,
                message: str, dry_run: bool) -> ImportResult:
        log.warning("delivery %s rejected: %s", file_name, message)
        if dry_run:
            return tally.result(None, "rejected", message)
        try:
            name: DeliveryName | None = delivery.name if delivery is not None else DeliveryName.parse(file_name)
        except ValueError:
            name = None
        import_id = self.store.record_rejected(
            file_name=file_name, sha256=delivery.sha256 if delivery is not None else sha256_of(path),
            hauptvermittler=name.hauptvermittler if name else None, delivered_on=name.delivered_on if name else None,
            source=source, message=message, rows=tally.rows, errors=tally.errors)
        return tally.result(import_id, "rejected", message)

    # ------------------------------------------------------------------ reading into staging
    def _read(self, session: ImportSession, delivery: Delivery, import_id: int, tally: _Tally) -> None:
        """Stage the rows that may differ from the snapshot; note the keys no row of the delivery has.

        A row whose raw digest is the one stored for its key is the same text as the row
        stored, so it is neither validated nor staged again: only counted.  Rows of records
        with an echo mark are always staged (their delivered values are compared with it).
        """
        stored_errors: list[RowError] = []
        kept = 0
        done = reported = 0     # rows read; rows read at the last progress report
        tables = list(delivery.tables)
        for at, table in enumerate(tables):
            missing = tuple(delivery.missing_columns.get(table) or ())
            tally.rows[table] = 0
            staged = 0
            # Key -> raw digest of every row still delivered; the reader puts the line of a row delivered
            # unchanged in place of its digest: the keys left with a digest at the end have vanished.
            # The next table's digests are fetched while this one is read.
            following = tables[at + 1] if at + 1 < len(tables) else None
            known = cast("dict[str, bytes | int | None]", session.raw_digests(table, then=following))
            entity = ENTITY_OF.get(table)
            echoes = session.echo_keys(entity) if entity is not None else set()
            for key in echoes & known.keys():
                known[key] = None
            # A table the snapshot never held (the first delivery): its rows are new, stored at once
            # without staging; their deltas are written in the comparison, in the tables' order.
            fresh = not known and not session.has_rows(table)
            created: list[tuple[str, str]] = []     # (kind, key) of rows stored at once
            erroneous_keys: set[str] = set()
            direct: list[ParsedRow] = []
            keyed = 0       # rows with a key, valid or not: their records are in this delivery
            parsed: list[ParsedRow] = []
            erroneous: list[dict[str, Any]] = []
            last_erroneous: tuple[str, int] | None = None
            for item in delivery.rows(table, known):
                if item.__class__ is int:
                    # Rows delivered exactly as stored (their line replaced their digest in ``known``): unchanged.
                    count = int(item)
                    tally.rows[table] += count
                    keyed += count
                    done += count
                    if done >= reported + PROGRESS_EVERY:
                        reported = done
                        self.progress("read", done, None)
                    continue
                done += 1
                if isinstance(item, ParsedRow) and len(item.key) > MAX_KEY:
                    item = RowError(f"{table}.csv", item.line, KEY_OF[table], f"longer than {MAX_KEY} characters")
                if isinstance(item, ParsedRow):
                    tally.rows[table] += 1
                    keyed += 1
                    known.pop(item.key, None)
                    if fresh and item.key not in echoes:
                        direct.append(item)
                    else:
                        parsed.append(item)
                elif isinstance(item, RowError):
                    tally.errors += 1
                    if kept < MAX_STORED_ERRORS:
                        stored_errors.append(item)
                        kept += 1
                    # A row with an error but a key: that record is kept as it was (one entry per row).
                    if item.key and len(item.key) <= MAX_KEY and (item.key, item.line) != last_erroneous:
                        last_erroneous = (item.key, item.line)
                        tally.erroneous_keys += 1
                        keyed += 1
                        known.pop(item.key, None)
                        erroneous_keys.add(item.key)
                        erroneous.append({"import_id": import_id, "table": table, "key": item.key, "line": item.line,
                                          "hash": None, "data": None, "error": True})
                if len(direct) >= STAGE_BATCH:
                    self._store_new(session, import_id, table, missing, direct, created)
                    direct = []
                if len(parsed) >= STAGE_BATCH:
                    session.stage(self._staged_rows(session, import_id, table, missing, parsed))
                    staged += len(parsed)
                    parsed = []
                if len(erroneous) >= STAGE_BATCH:
                    session.stage(erroneous)
                    erroneous = []
                if len(stored_errors) >= STAGE_BATCH:
                    session.add_row_errors(import_id, stored_errors)
                    stored_errors = []
                if done >= reported + PROGRESS_EVERY:
                    reported = done
                    self.progress("read", done, None)
            session.stage(self._staged_rows(session, import_id, table, missing, parsed))
            tally.staged[table] = staged + len(parsed)
            session.stage(erroneous)
            self._store_new(session, import_id, table, missing, direct, created)
            if created and erroneous_keys:
                # A row stored at once whose key came again with an error: that record is not taken.
                dropped = {key for _, key in created if key in erroneous_keys}
                session.delete_snapshot_rows(table, sorted(dropped))
                created = [(kind, key) for kind, key in created if key not in dropped]
            if entity is not None:
                tally.created[table] = created
            tally.keyed[table] = keyed
            tally.vanished[table] = sorted(key for key, digest in known.items() if digest.__class__ is not int)
            del known
        session.add_row_errors(import_id, stored_errors)
        self.progress("read", done, done)

    def _store_new(self, session: ImportSession, import_id: int, table: str, missing: tuple[str, ...],
                   rows: list[ParsedRow], created: list[tuple[str, str]]) -> None:
        """Store rows of a table the snapshot never held; note (kind, key) of each for its delta.

        The snapshot has no row of the table to fill missing columns from (and no key comes twice).
        """
        kinds: dict[str, str] = {}      # one string per person type, not one per row
        # Slice by slice: the store takes them as one stream, and few rows' objects live at a time.
        for start in range(0, len(rows), NEW_ROWS_SLICE):
            ordered = _in_column_order(table, missing, rows[start:start + NEW_ROWS_SLICE], {})
            session.insert_new(table, import_id, [(p.key, *row_text(table, data), p.raw_hash) for p, data in ordered])
            if table == CUSTOMERS:
                created.extend((kinds.setdefault(kind, kind), p.key)
                               for p, data in ordered for kind in (str(data.get("Personentyp") or ""),))
            else:
                created.extend(("", p.key) for p, _ in ordered)

    @staticmethod
    def _staged_rows(session: ImportSession, import_id: int, table: str, missing: tuple[str, ...],
                     parsed: list[ParsedRow]) -> list[dict[str, Any]]:
        """Build staging rows: missing optional columns filled from the snapshot, values in column order."""
        previous = session.snapshot_data(table, [p.key for p in parsed]) if missing and parsed else {}
        return [{"import_id": import_id, "table": table, "key": p.key, "line": p.line, "hash": hashed, "data": data,
                 "text": text, "raw_hash": p.raw_hash, "error": False}
                for p, data in _in_column_order(table, missing, parsed, previous)
                for text, hashed in (row_text(table, data),)]

    # ------------------------------------------------------------------ the delta
    def _diff(self, session: ImportSession, delivery: Delivery, import_id: int, tally: _Tally) -> None:
        session.analyze_staging()
        if tally.erroneous_keys:
            session.drop_erroneous(import_id)
        tables = [t for t in TABLE_ORDER if t in delivery.tables]
        for table in tables:
            if tally.keyed.get(table, 0) == 0 and (delivered := session.count_delivered(table)):
                raise DeliveryRejected(f"{table}.csv has no rows: applying it would delete all {delivered} rows "
                                       f"of the last delivery")
        self.progress("diff", 0, len(tables))
        texts = _LookupTexts(session)
        for done, table in enumerate(tables, 1):
            entity = ENTITY_OF.get(table)
            differing = 0   # candidates new, re-delivered or of other values than the snapshot's
            for page in session.candidates(import_id, table, entity, page=DIFF_PAGE):
                delivery.stop_requested()
                differing += sum(1 for c in page if c.old_data is None or c.deleted or c.old_hash != c.hash)
                self._apply_page(session, import_id, table, entity, page, tally, texts, delivery.name.delivered_on)
            self._created_deltas(session, import_id, table, entity, tally)
            vanished = tally.vanished.pop(table, [])
            if entity is not None:
                for start in range(0, len(vanished), DIFF_PAGE):
                    keys = vanished[start:start + DIFF_PAGE]
                    session.add_deltas([{"import_id": import_id, "entity": entity, "change": "deleted", "key": key,
                                         "changed_fields": [], "echoed_fields": []} for key in keys])
                    for key in keys:
                        tally.delta(f"{entity}.deleted", key)
            if vanished:
                session.mark_deleted(import_id, table, vanished)
            # Only staged rows of the snapshot's values can have a digest to refresh: when every staged row
            # was a candidate of other values (none was dropped for an erroneous row), there is none.
            if tally.erroneous_keys or differing != tally.staged.get(table, 0):
                session.refresh_raw_hashes(import_id, table)
            self.progress("diff", done, len(tables))

    @staticmethod
    def _created_deltas(session: ImportSession, import_id: int, table: str, entity: str | None,
                        tally: _Tally) -> None:
        """The deltas of the rows stored at once while reading (a table the snapshot never held), in key order.

        Customers are grouped by person type within each page, as the comparison does.
        """
        created = sorted(tally.created.pop(table, []), key=itemgetter(1))
        if entity is None:
            return
        kind = f"{entity}.created"
        examples = tally.samples.setdefault(kind, []) if created else []
        for start in range(0, len(created), DIFF_PAGE):
            page = created[start:start + DIFF_PAGE]
            if table == CUSTOMERS:
                page.sort(key=itemgetter(0))
            session.add_created(import_id, entity, [key for _, key in page])
            # What tally.delta(kind, key, []) counts and samples for each, at once.
            tally.deltas[kind] += len(page)
            examples.extend({"key": key, "changed_fields": []} for _, key in page[:SAMPLES - len(examples)])

    def _apply_page(self, session: ImportSession, import_id: int, table: str, entity: str | None,
                    page: list[Candidate], tally: _Tally, texts: _LookupTexts, delivered_on: date) -> None:
        """Store a page of candidates in the snapshot and put their deltas in the outbox.

        Echoes are suppressed per field: a column delivered with the value the
        CRM -> Ameise direction last wrote (its echo mark) is our own write coming
        back, so it is left out of ``changed_fields`` and named in ``echoed_fields``;
        every other change reaches the CRM.  A changed record left with no changed
        column, or a created one whose every delivered value (key and volatile
        columns aside) is such an echo, is ``suppressed``.

        A column leaves the mark once a delivery carried it as we wrote it
        (confirmed), or carried another value that this delta sends to the CRM (the
        CRM has a newer value than ours then); the mark is consumed when no column
        is left.  A column delivered unchanged (as in the snapshot) but different
        from our write is an edit in Ameise after our write when the delivery is of
        a later day than the write: it goes to the CRM.  A delivery of the write's
        day or earlier may have been exported before the write reached Ameise: the
        column stays in the mark for the next delivery to decide.
        """
        new: list[Candidate] = []       # never delivered before
        changed: list[Candidate] = []   # known: re-delivered or different
        deltas: list[dict[str, Any]] = []
        consumed: list[str] = []                # echo marks with no column left
        narrowed: dict[str, dict[str, Any]] = {}  # echo marks with columns left to recognise
        for c in page:
            created = c.old_data is None or c.deleted
            echoed = _echoed(c, texts)
            sent: list[str] = []        # the columns this delta brings to the CRM
            reverted = [] if created else _reverted(table, c, echoed, delivered_on)
            # Unchanged and not created: only here for its echo mark (or a new text of the same values).
            if created or c.old_hash != c.hash or reverted:
                if created or c.old_hash != c.hash:
                    (new if c.old_data is None else changed).append(c)
                fields = [] if created else changed_fields(table, c.old_data or {}, c.data)
                fields += [column for column in reverted if column not in fields]
                if entity is not None and (created or fields):
                    sent = [column for column in (_delivered(table, c.data) if created else fields)
                            if column not in echoed]
                    if c.echo is not None and not sent:
                        # Our own write to Ameise coming back: the CRM has these values already.
                        tally.delta("suppressed", c.key, fields)
                    else:
                        change = "created" if created else "changed"
                        fields = [f for f in fields if f not in echoed]
                        deltas.append({"import_id": import_id, "entity": entity, "change": change, "key": c.key,
                                       "changed_fields": fields, "echoed_fields": echoed})
                        tally.delta(f"{entity}.{change}", c.key, fields)
            if c.echo is not None and entity is not None:
                done = {*echoed, *sent}
                left = {column: value for column, value in c.echo.items() if column not in done}
                if not left:
                    consumed.append(c.key)
                elif len(left) < len(c.echo):
                    narrowed[c.key] = left
        if table == CUSTOMERS:
            # Natural and legal persons go to different CRM modules: grouped, the return path fills whole
            # upserts of one module (Zoho bills 1 credit per 10 records of a call, rounded up).
            kinds = {c.key: str(c.data.get("Personentyp") or "") for c in page}
            deltas.sort(key=lambda delta: kinds.get(delta["key"], ""))
        session.insert_snapshot(table, import_id, new)
        session.update_snapshot(table, import_id, changed)
        session.add_deltas(deltas)
        if entity is not None:
            session.consume_echoes(entity, consumed)
            session.narrow_echoes(entity, narrowed)


def _in_column_order(table: str, missing: tuple[str, ...], parsed: list[ParsedRow],
                     previous: dict[str, dict[str, Any]]) -> list[tuple[ParsedRow, dict[str, Any]]]:
    """Each row with its values in column order, missing optional columns filled from ``previous`` (key -> data).

    One order for every delivery, so the stored JSON text of equal rows is equal.
    """
    in_order: tuple[str, ...] | None = None     # the order of the columns of the rows, once found right
    rows = []
    for p in parsed:
        data = p.data
        old = previous.get(p.key)
        if old:
            data = {**data, **{c: old[c] for c in missing if c in old}}
        order = tuple(data)
        if order != in_order:
            data = in_column_order(table, data)
            if tuple(data) == order and not missing:
                in_order = order
        rows.append((p, data))
    return rows


def _echoed(c: Candidate, texts: _LookupTexts) -> list[str]:
    """The columns of the echo mark whose delivered value is the one we wrote (none without a mark)."""
    if c.echo is None:
        return []
    return [column for column, value in c.echo.items() if texts.same(column, c.data.get(column), value)]


def _reverted(table: str, c: Candidate, echoed: list[str], delivered_on: date) -> list[str]:
    """Columns of the echo mark that Ameise changed back after our write, unseen by the snapshot's diff.

    The delivery carries them as the snapshot has them but not as we wrote them;
    only a delivery of a later day than the write is known to be exported after it.
    """
    if c.echo is None or c.old_data is None or c.echo_written_at is None:
        return []
    if delivered_on <= c.echo_written_at.date():
        return []
    volatile = set(VOLATILE_COLUMNS.get(table, ()))
    return [column for column in c.echo
            if column not in echoed and column not in volatile and column in c.data
            and c.data.get(column) == c.old_data.get(column)]


def _delivered(table: str, data: dict[str, Any]) -> list[str]:
    """The columns of a row that carry a value, its key and its volatile columns aside."""
    skip = {KEY_OF[table], *VOLATILE_COLUMNS.get(table, ())}
    return [column for column, value in data.items()
            if column not in skip and value is not None and not (isinstance(value, str) and not value.strip())]


class _LookupTexts:
    """Compare an echo's value with a delivered one, where the echo may hold a lookup's text for its ID."""

    def __init__(self, session: ImportSession) -> None:
        self.session = session
        self.lists: dict[str, dict[str, str]] = {}

    def same(self, column: str, delivered: Any, echoed: Any) -> bool:
        if delivered == echoed:
            return True
        table = LOOKUP_OF_COLUMN.get(column)
        if table is None or delivered is None or echoed is None:
            return False
        if table not in self.lists:
            self.lists[table] = self.session.lookup_texts(table)
        return bool(self.lists[table].get(delivered) == echoed)


@dataclass
class _Batch:
    """A batch of the outbox: its deltas, those to send in their messages, those refused by the contract."""

    deltas: list[PendingDelta]
    sent: list[PendingDelta] = field(default_factory=list)
    messages: list[tuple[str, Any, str]] = field(default_factory=list)      # (routing key, body, message id)
    ends: list[int] = field(default_factory=list)   # per message: how many of ``sent`` it and those before carry
    refused: list[tuple[PendingDelta, str, Any, Any]] = field(default_factory=list)  # (delta, key, body, errors)

    def confirmed(self, messages: int) -> list[PendingDelta]:
        """The deltas carried by the first ``messages`` messages."""
        return self.sent[:self.ends[messages - 1]] if messages > 0 else []


def _checked(deltas: list[PendingDelta]) -> _Batch:
    """The messages of a batch of deltas (up to 100 deltas each), each delta checked against the contract.

    Deltas that violate it are set apart.  A message's id names the outbox ids of its
    first and last delta, which no other message shares.
    """
    batch = _Batch(deltas)
    sent, refused = batch.sent, batch.refused
    bodies: list[dict[str, Any]] = []
    for d in deltas:
        delta_id = d.delta_id
        # Checked against the contract once, here where it is made; the publisher sends it as it is.
        body = ameise_record_changed_plain_body_of(delta_id, d.import_id, d.delivered_on.isoformat(), d.entity,
                                                   d.change, d.key, d.changed_fields, d.echoed_fields)
        if body is None:
            body = _schema.dump(_message(d))
            errors = _schema.validate(body)
            if errors:
                refused.append((d, ameise_record_changed_key(str(d.entity), str(d.change)), body, errors))
                continue
        sent.append(d)
        bodies.append(body)
    for start in range(0, len(sent), DELTAS_PER_MESSAGE):
        end = min(start + DELTAS_PER_MESSAGE, len(sent))
        batch.messages.append((AMEISE_DELTAS_KEY, ameise_deltas_body(bodies[start:end]),
                               f"dailyup-outbox:{sent[start].id}-{sent[end - 1].id}"))
        batch.ends.append(end)
    return batch


def _message(delta: PendingDelta) -> AmeiseRecordChanged:
    return AmeiseRecordChanged(delta_id=delta.delta_id, import_id=delta.import_id,
                               delivered_on=delta.delivered_on.isoformat(), entity=delta.entity,
                               change=delta.change, key=delta.key, changed_fields=delta.changed_fields,
                               echoed_fields=delta.echoed_fields)
