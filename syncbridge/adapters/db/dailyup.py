"""The DailyUp store: imports, row errors, the snapshot of the deliveries, the outbox of deltas, echoes.

SQLAlchemy Core on the engine of :class:`syncbridge.adapters.db.sql.SqlStore` (SQLite or PostgreSQL,
schema by the Alembic migrations).  The read methods each run in a short
transaction of their own; an import writes through one :class:`ImportSession`,
so a delivery is applied whole or not at all.  The comparison of a delivery with
the snapshot runs in SQL, page by page in key order, so memory stays bounded
whatever the size of the delivery.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import date
from typing import Any

from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    Engine,
    LargeBinary,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    insert,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, Connection

from syncbridge.adapters.db.models import (
    DailyUpDeltaRecord,
    DailyUpEchoRecord,
    DailyUpImportRecord,
    DailyUpRowErrorRecord,
    DailyUpSnapshotRecord,
    DailyUpStagingRecord,
    UtcDateTime,
    utcnow,
)
from syncbridge.adapters.db.sql import _echo_values, _upsert, make_engine
from syncbridge.deliveries import RowError, compact_json
from syncbridge.ports import Candidate, DailyUpImport, PendingDelta, SnapshotRow

IMPORTS: Table = DailyUpImportRecord.__table__  # type: ignore[assignment]
ROW_ERRORS: Table = DailyUpRowErrorRecord.__table__  # type: ignore[assignment]
SNAPSHOT: Table = DailyUpSnapshotRecord.__table__  # type: ignore[assignment]
STAGING: Table = DailyUpStagingRecord.__table__  # type: ignore[assignment]
DELTAS: Table = DailyUpDeltaRecord.__table__  # type: ignore[assignment]
ECHOES: Table = DailyUpEchoRecord.__table__  # type: ignore[assignment]

ACCEPTED_STATES = ("accepted", "published")
# Keys per IN (...) list: far below SQLite's and PostgreSQL's limits on bound parameters.
_IN_CHUNK = 500
# Any constant shared by every process of the service: PostgreSQL serialises imports on it.
_IMPORT_LOCK = 0x5D41_1A0B_0D41_7955
# The JSON text ``json.dumps`` writes (and SQLAlchemy would), without its per-call set-up.
_json_text = json.JSONEncoder(check_circular=False).encode


# The outbox in id order, one range of ids at a time (see SqlDailyUpStore.unpublished_deltas).
_UNPUBLISHED = (select(DELTAS.c.id, DELTAS.c.import_id, IMPORTS.c.delivered_on, DELTAS.c.entity, DELTAS.c.change,
                       DELTAS.c.key, DELTAS.c.changed_fields, DELTAS.c.echoed_fields)
                .join(IMPORTS, IMPORTS.c.id == DELTAS.c.import_id)
                .where(DELTAS.c.published_at.is_(None), DELTAS.c.id > bindparam("after"),
                       DELTAS.c.id <= bindparam("last"))
                .order_by(DELTAS.c.id).limit(bindparam("limit")))
_UNPUBLISHED_PG = (
    "SELECT d.id, d.import_id, i.delivered_on, d.entity, d.change, d.key, d.changed_fields::text, "
    "d.echoed_fields::text "
    "FROM dailyup_deltas d JOIN dailyup_imports i ON i.id = d.import_id "
    "WHERE d.published_at IS NULL AND d.id > %s AND d.id <= %s ORDER BY d.id LIMIT %s")
_NEXT_UNPUBLISHED = select(func.min(DELTAS.c.id)).where(DELTAS.c.published_at.is_(None),
                                                        DELTAS.c.id > bindparam("after"))


def _names(text: str | None) -> tuple[str, ...]:
    """A list of column names stored as JSON text (None or "[]" for none)."""
    if text is None or text == "[]":
        return ()
    return tuple(json.loads(text) or ())


def _unpublished_reader(conn: Connection) -> Callable[[int, int, int], list[PendingDelta]]:
    """Read the unpublished deltas of ids in (after, last], at most ``limit``, in id order, on ``conn``."""
    if conn.dialect.name != "postgresql":
        def read(after: int, last: int, limit: int) -> list[PendingDelta]:
            rows = conn.execute(_UNPUBLISHED, {"after": after, "last": last, "limit": limit})
            return [PendingDelta(i, import_id, delivered_on, entity, change, key, tuple(changed or ()),
                                 tuple(echoed or ()))
                    for i, import_id, delivered_on, entity, change, key, changed, echoed in rows]
        return read

    def read_pg(after: int, last: int, limit: int) -> list[PendingDelta]:
        # Thousands of rows a batch while the broker is fed: read by the driver's cursor, without a
        # SQLAlchemy row object each; the column lists as text, most of them "[]".
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(_UNPUBLISHED_PG, (after, last, limit))
            return [PendingDelta(i, import_id, delivered_on, entity, change, key, _names(changed), _names(echoed))
                    for i, import_id, delivered_on, entity, change, key, changed, echoed in cursor.fetchall()]
        finally:
            cursor.close()
    return read_pg


def _to_import(row: Any) -> DailyUpImport:
    return DailyUpImport(
        id=row.id, file_name=row.file_name, sha256=row.sha256, hauptvermittler=row.hauptvermittler,
        delivered_on=row.delivered_on, source=row.source, received_at=row.received_at,
        finished_at=row.finished_at, state=row.state, message=row.message, rows=dict(row.rows or {}),
        errors=row.errors, deltas=dict(row.deltas or {}), encodings=dict(row.encodings or {}),
        extra_columns=dict(row.extra_columns or {}), timings=dict(row.timings or {}),
        published_at=row.published_at,
    )


# The fields of COPY's text format (https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.2):
# tab between fields, a line a row, \N for NULL, a backslash escapes.  A text field has its backslash, tab,
# newline and carriage return escaped; every other character stands for itself.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_SNAPSHOT_COLUMNS = ("table", "key", "hash", "data", "raw_hash", "deleted", "import_id", "updated_at")
_DELTA_COLUMNS = ("import_id", "entity", "change", "key", "changed_fields", "echoed_fields")


def _text(value: str) -> str:
    """A text value as a field of COPY's text format."""
    if "\\" in value or not value.isprintable():
        return value.translate(_COPY_ESCAPES)
    return value


def _text_or_null(value: str | None) -> str:
    return "\\N" if value is None else _text(value)


def _json_field(data: Any) -> str:
    """The JSON text of ``data`` (as SQLAlchemy would write it) as a field of COPY's text format, \\N for None.

    ``json`` escapes every control character, so of the characters COPY treats apart only a backslash is left.
    """
    if data is None:
        return "\\N"
    return _json_copy_text(_json_text(data))


def _json_copy_text(text: str) -> str:
    """JSON text as a field of COPY's text format (see :func:`_json_field`)."""
    return text.replace("\\", "\\\\") if "\\" in text else text


def _json_names(values: Sequence[str] | None) -> str:
    """The JSON text of a list of column names (most deltas have none) as a field of COPY's text format."""
    return _json_copy_text(_json_text(values)) if values else "[]"


def _bytea(value: bytes | None) -> str:
    """A bytea value (hex input form, its backslash escaped) as a field of COPY's text format, \\N for None."""
    return "\\N" if value is None else "\\\\x" + value.hex()


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class SqlDailyUpStore:
    """The DailyUp tables on a SQLAlchemy engine (implements :class:`syncbridge.ports.DailyUpSnapshot`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str | URL) -> SqlDailyUpStore:
        """Create a store on a new engine for ``url``."""
        return cls(make_engine(url))

    # ------------------------------------------------------------ snapshot
    def snapshot_rows(self, table: str, keys: list[str]) -> dict[str, SnapshotRow]:
        """Return the rows of ``table`` with these keys (deleted ones included); unknown keys are left out."""
        found: dict[str, SnapshotRow] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(dict.fromkeys(keys))):
                query = select(SNAPSHOT).where(SNAPSHOT.c.table == table, SNAPSHOT.c.key.in_(chunk))
                for row in conn.execute(query):
                    found[row.key] = SnapshotRow(row.table, row.key, dict(row.data), row.deleted, row.import_id)
        return found

    def lookups(self, table: str) -> dict[str, str]:
        """Return a lookup list as ID -> Text; empty if it was never delivered."""
        query = (select(SNAPSHOT.c.key, SNAPSHOT.c.data)
                 .where(SNAPSHOT.c.table == table, SNAPSHOT.c.deleted.is_(False)).order_by(SNAPSHOT.c.key))
        with self.engine.connect() as conn:
            return {row.key: row.data.get("Text") for row in conn.execute(query)}

    def iter_snapshot(self, table: str, import_id: int | None = None, *, page: int = 5000) -> Iterator[dict[str, Any]]:
        """Yield the data of the delivered rows of ``table`` in key order (only those ``import_id`` changed, if given)."""
        after = ""
        while True:
            query = (select(SNAPSHOT.c.key, SNAPSHOT.c.data)
                     .where(SNAPSHOT.c.table == table, SNAPSHOT.c.deleted.is_(False), SNAPSHOT.c.key > after)
                     .order_by(SNAPSHOT.c.key).limit(page))
            if import_id is not None:
                query = query.where(SNAPSHOT.c.import_id == import_id)
            # One short transaction per page: a long export never holds the database.
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            for row in rows:
                yield dict(row.data)
            if len(rows) < page:
                return
            after = rows[-1].key

    # ------------------------------------------------------------ imports
    def imports(self, limit: int = 20) -> list[DailyUpImport]:
        """Return the newest imports first."""
        query = select(IMPORTS).order_by(IMPORTS.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_to_import(row) for row in conn.execute(query)]

    def get_import(self, import_id: int) -> DailyUpImport | None:
        """Return one import by its id."""
        with self.engine.connect() as conn:
            row = conn.execute(select(IMPORTS).where(IMPORTS.c.id == import_id)).first()
        return None if row is None else _to_import(row)

    def import_of_file(self, sha256: str) -> DailyUpImport | None:
        """Return the import of the file with this SHA-256, if it was taken in."""
        with self.engine.connect() as conn:
            row = conn.execute(select(IMPORTS).where(IMPORTS.c.sha256 == sha256)).first()
        return None if row is None else _to_import(row)

    def latest_import(self) -> DailyUpImport | None:
        """Return the newest import, whatever its state."""
        found = self.imports(limit=1)
        return found[0] if found else None

    def row_errors(self, import_id: int, limit: int | None = None) -> list[RowError]:
        """Return the stored row errors of an import in the order they were found."""
        query = select(ROW_ERRORS).where(ROW_ERRORS.c.import_id == import_id).order_by(ROW_ERRORS.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [RowError(row.file, row.line, row.column, row.message, row.key) for row in conn.execute(query)]

    def record_rejected(self, *, file_name: str, sha256: str, hauptvermittler: str | None,
                        delivered_on: date | None, source: str, message: str, **counts: Any) -> int:
        """Record a delivery as rejected, in a transaction of its own; an import that was kept stays as it is."""
        with self.engine.begin() as conn:
            session = ImportSession(conn)
            existing = session.find_import(sha256)
            if existing is not None and existing.state != "rejected":
                return existing.id
            import_id = session.start_import(file_name=file_name, sha256=sha256, hauptvermittler=hauptvermittler,
                                             delivered_on=delivered_on, source=source)
            session.finish_import(import_id, state="rejected", message=message, **counts)
            return import_id

    @contextmanager
    def session(self, *, dry_run: bool = False) -> Iterator[ImportSession]:
        """Open one import's transaction: committed at the end, rolled back on an error or for a dry run."""
        with self.engine.connect() as conn:
            transaction = conn.begin()
            session = ImportSession(conn)
            try:
                try:
                    yield session
                    session.flush()
                except BaseException as exc:
                    session.abandon(exc)
                    transaction.rollback()
                    raise
                if dry_run:
                    transaction.rollback()
                else:
                    transaction.commit()
            finally:
                session.close()

    # ------------------------------------------------------------ echoes
    def remember_echo(self, entity: str, key: str, data: dict[str, Any]) -> None:
        """Remember the DailyUp columns just written to Ameise, so the next delivery does not send them back."""
        with self.engine.begin() as conn:
            _upsert(conn, ECHOES, _echo_values(entity, key, data), ["entity", "key"], ["data", "written_at"])

    def echo(self, entity: str, key: str) -> dict[str, Any] | None:
        """Return the echo mark of a record, if one waits for a delivery to confirm it."""
        with self.engine.connect() as conn:
            row = conn.execute(select(ECHOES.c.data).where(ECHOES.c.entity == entity, ECHOES.c.key == key)).first()
        return None if row is None else dict(row.data)

    # ------------------------------------------------------------ outbox
    def unpublished_deltas(self, limit: int, after: int = 0) -> list[PendingDelta]:
        """Return the oldest deltas not yet published (of ids above ``after``), in id order.

        Read range by range of ids: whatever plan the database picks (right after an
        import loaded a million deltas it has no statistics of them yet), a read costs
        the deltas of one range, not a scan and sort of the whole outbox each time.
        """
        span = 2 * limit
        found: list[PendingDelta] = []
        with self.engine.connect() as conn:
            read = _unpublished_reader(conn)
            while len(found) < limit:
                found += read(after, after + span, limit - len(found))
                if len(found) >= limit:
                    break
                # The range is exhausted: go on at the next unpublished delta, if any (the index's first entry).
                following = conn.execute(_NEXT_UNPUBLISHED, {"after": after + span}).scalar()
                if following is None:
                    break
                after = following - 1
        return found

    def count_unpublished(self) -> int:
        """Return how many deltas wait in the outbox."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(DELTAS)
                                .where(DELTAS.c.published_at.is_(None))).scalar_one()

    def mark_published(self, ids: Iterable[int], *, settle: bool = True) -> None:
        """Mark deltas as published; an accepted import whose outbox is now empty becomes "published".

        With ``settle=False`` only the deltas are marked (one UPDATE per batch on PostgreSQL);
        the imports' state follows at the next call that settles.
        """
        now = utcnow()
        ids = list(ids)
        with self.engine.begin() as conn:
            if ids and conn.dialect.name == "postgresql":
                conn.execute(update(DELTAS).where(DELTAS.c.id == func.any(cast(ids, ARRAY(BigInteger))),
                                                  DELTAS.c.published_at.is_(None)).values(published_at=now))
            else:
                for chunk in _chunks(ids):
                    conn.execute(update(DELTAS).where(DELTAS.c.id.in_(chunk), DELTAS.c.published_at.is_(None))
                                 .values(published_at=now))
            if not settle:
                return
            waiting = exists().where(DELTAS.c.import_id == IMPORTS.c.id, DELTAS.c.published_at.is_(None))
            conn.execute(update(IMPORTS).where(IMPORTS.c.state == "accepted", ~waiting)
                         .values(state="published", published_at=now))


_KEY_SEPARATOR = "\x1e"    # between the keys of a table read at once (see _raw_digests_on)
_DIGEST_SIZE = 16           # bytes of a raw digest


def _raw_digests_on(conn: Connection, table: str) -> dict[str, bytes | None]:
    """Key -> raw digest of the rows of ``table`` still delivered, on PostgreSQL."""
    # A million rows: PostgreSQL joins the keys into one text and the 16-byte digests into one bytea (the two
    # aggregates take the rows in the same order), so that the driver makes two objects, not a tuple a row.
    # A key holding the separator (the text then splits into more keys than rows) or a digest of another
    # length sends the rows one by one instead, in binary, so that the digests come as they are stored.
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(
            'SELECT string_agg(key, %(sep)s) FILTER (WHERE length(raw_hash) = %(size)s),'
            ' string_agg(raw_hash, %(none)s) FILTER (WHERE length(raw_hash) = %(size)s),'
            ' count(*) FILTER (WHERE length(raw_hash) = %(size)s),'
            ' string_agg(key, %(sep)s) FILTER (WHERE raw_hash IS NULL),'
            ' count(*) FILTER (WHERE raw_hash IS NULL),'
            ' count(*) FILTER (WHERE length(raw_hash) <> %(size)s)'
            ' FROM dailyup_snapshot WHERE "table" = %(table)s AND NOT deleted',
            {"sep": _KEY_SEPARATOR, "size": _DIGEST_SIZE, "none": b"", "table": table}, binary=True)
        row = cursor.fetchone()
        if row is not None and not row[5]:
            keys = row[0].split(_KEY_SEPARATOR) if row[2] else []
            unknown = row[3].split(_KEY_SEPARATOR) if row[4] else []
            if len(keys) == row[2] and len(unknown) == row[4]:
                blob: bytes = row[1] or b""
                found: dict[str, bytes | None] = dict(
                    zip(keys, [blob[at:at + _DIGEST_SIZE] for at in range(0, len(blob), _DIGEST_SIZE)]))
                found.update(dict.fromkeys(unknown))
                return found
        cursor.execute('SELECT key, raw_hash FROM dailyup_snapshot WHERE "table" = %s AND NOT deleted', (table,),
                       binary=True)
        return dict(cursor.fetchall())
    finally:
        cursor.close()


def _read_raw_digests(engine: Engine, table: str) -> dict[str, bytes | None]:
    """:func:`_raw_digests_on` on a connection of its own, in a short transaction."""
    with engine.connect() as conn:
        return _raw_digests_on(conn, table)


class ImportSession:
    """The reads and writes of one import, all on one connection inside its transaction.

    On PostgreSQL, rows go in by ``COPY``, and a ``COPY`` is left open for the next
    rows of the same table and columns: the server stores one batch while the next is
    read, instead of the importer waiting for each batch in turn.  Any other use of
    the connection (:attr:`conn`) ends it first, and so does :meth:`flush` (at the end
    of :meth:`SqlDailyUpStore.session`); an error of those rows shows there.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.postgres = conn.dialect.name == "postgresql"
        self._copying: tuple[str, tuple[str, ...]] | None = None   # the open COPY: table, columns
        self._copy_write: Any = None
        self._copy_stack: ExitStack | None = None                  # ends the open COPY and its cursor
        self._digests_ahead: tuple[str, Future[dict[str, bytes | None]]] | None = None   # see raw_digests
        self._reader: ThreadPoolExecutor | None = None     # the thread reading digests ahead, while the session lasts

    @property
    def conn(self) -> Connection:
        """The connection, an open ``COPY`` ended first (its rows are then in the table)."""
        if self._copying is not None:
            self.flush()
        return self._conn

    def flush(self) -> None:
        """End the open ``COPY``, if any: its rows are then written (or its error raised)."""
        stack, self._copy_stack = self._copy_stack, None
        self._copying = self._copy_write = None
        if stack is not None:
            stack.close()

    def abandon(self, error: BaseException) -> None:
        """Cancel the open ``COPY``, if any, as the transaction is rolled back for ``error``."""
        stack, self._copy_stack = self._copy_stack, None
        self._copying = self._copy_write = None
        if stack is not None:
            try:
                stack.__exit__(type(error), error, error.__traceback__)
            except Exception:   # the rollback that follows ends what is left of it
                pass

    def close(self) -> None:
        """Wait for a read of digests ahead, if one runs: no thread of the import outlasts its session."""
        reader, self._reader, self._digests_ahead = self._reader, None, None
        if reader is not None:
            reader.shutdown(wait=True, cancel_futures=True)

    def lock(self, *, then: str | None = None) -> None:
        """Wait until no other import runs (two imports diffing at once would both see the old snapshot).

        ``then`` names the table whose digests :meth:`raw_digests` will be asked for first:
        on PostgreSQL they are read from now on, on a connection of their own (see there).
        """
        if self.postgres:
            self.conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _IMPORT_LOCK})
            if then is not None:
                self._read_ahead(then)
        # SQLite allows one writer at a time anyway.

    # ------------------------------------------------------------ the import row
    def find_import(self, sha256: str) -> DailyUpImport | None:
        row = self.conn.execute(select(IMPORTS).where(IMPORTS.c.sha256 == sha256)).first()
        return None if row is None else _to_import(row)

    def newest_accepted(self, hauptvermittler: str) -> DailyUpImport | None:
        """Return the accepted delivery of this Hauptvermittler with the latest delivery date."""
        row = self.conn.execute(
            select(IMPORTS).where(IMPORTS.c.hauptvermittler == hauptvermittler, IMPORTS.c.state.in_(ACCEPTED_STATES))
            .order_by(IMPORTS.c.delivered_on.desc(), IMPORTS.c.id.desc()).limit(1)
        ).first()
        return None if row is None else _to_import(row)

    def start_import(self, *, file_name: str, sha256: str, hauptvermittler: str | None, delivered_on: date | None,
                     source: str) -> int:
        """Create the import row in state "importing" (a rejected one of the same file is taken over)."""
        values = {
            "file_name": file_name, "hauptvermittler": hauptvermittler, "delivered_on": delivered_on,
            "source": source, "received_at": utcnow(), "finished_at": None, "state": "importing", "message": "",
            "rows": {}, "errors": 0, "deltas": {}, "encodings": {}, "extra_columns": {}, "timings": {},
            "published_at": None,
        }
        existing = self.find_import(sha256)
        if existing is not None:
            self.conn.execute(update(IMPORTS).where(IMPORTS.c.id == existing.id).values(values))
            return existing.id
        return self.conn.execute(insert(IMPORTS).values(sha256=sha256, **values)).inserted_primary_key[0]

    def finish_import(self, import_id: int, **values: Any) -> None:
        """Set the outcome of an import (state, message, counts) and its end time."""
        self.conn.execute(update(IMPORTS).where(IMPORTS.c.id == import_id).values(finished_at=utcnow(), **values))

    def add_row_errors(self, import_id: int, errors: Sequence[RowError]) -> None:
        if errors:
            self.conn.execute(insert(ROW_ERRORS), [
                {"import_id": import_id, "file": e.file, "line": e.line, "column": e.column, "key": e.key,
                 "message": e.message} for e in errors])

    # ------------------------------------------------------------ staging
    def snapshot_data(self, table: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Return the stored data of these keys (deleted rows included)."""
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(keys):
            query = select(SNAPSHOT.c.key, SNAPSHOT.c.data).where(SNAPSHOT.c.table == table, SNAPSHOT.c.key.in_(chunk))
            found.update((row.key, row.data) for row in self.conn.execute(query))
        return found

    def stage(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows (import_id, table, key, line, hash, data, error, and raw_hash if known) into staging.

        A row may carry its data's JSON text as ``text`` too (:func:`~syncbridge.deliveries.row_text`).

        On PostgreSQL by ``COPY`` (in this transaction): a delivery's rows are most of an
        import's writes, and COPY takes them several times faster than an INSERT per row.
        The data is the JSON text SQLAlchemy would write, so it compares equal to the snapshot's.
        """
        if not rows:
            return
        if not self.postgres:
            self.conn.execute(insert(STAGING), [{"raw_hash": None, **r} for r in rows])
            return
        self._copy("dailyup_staging", ("import_id", "table", "key", "line", "hash", "data", "raw_hash", "error"), [
            f"{r['import_id']}\t{_text(r['table'])}\t{_text(r['key'])}\t{r['line']}\t{_text_or_null(r['hash'])}\t"
            f"{_json_copy_text(r['text']) if 'text' in r else _json_field(r['data'])}\t{_bytea(r.get('raw_hash'))}\t"
            f"{'t' if r['error'] else 'f'}\n" for r in rows])

    def _copy(self, table: str, columns: tuple[str, ...], lines: list[str]) -> None:
        """``COPY`` rows into a table on PostgreSQL, in this session's transaction, in their order.

        Each row is a line of ``COPY``'s text format (fields made by :func:`_text` and its
        siblings), written as one block: formatting the rows here costs a fraction of what
        the driver's row by row formatting does.  The ``COPY`` stays open for the next rows
        of the same table and columns (see the class).
        """
        if self._copying != (table, columns):
            dbapi = self.conn.connection.dbapi_connection     # ends a COPY of other rows
            names = ", ".join(f'"{c}"' for c in columns)
            with ExitStack() as stack:
                cursor = stack.enter_context(dbapi.cursor())  # type: ignore[union-attr]
                # Sent by a thread of the driver's: the next rows are made while these go to the server.
                copy = stack.enter_context(cursor.copy(f"COPY {table} ({names}) FROM STDIN",
                                                       writer=QueuedLibpqWriter(cursor)))
                self._copy_stack = stack.pop_all()
            self._copying, self._copy_write = (table, columns), copy.write
        if lines:
            self._copy_write("".join(lines))

    def clear_staging(self) -> None:
        """Empty staging (imports run one at a time, so all of it belongs to the running one)."""
        if self.postgres:
            self.conn.execute(text("TRUNCATE dailyup_staging"))
        else:
            self.conn.execute(delete(STAGING))

    def analyze_staging(self) -> None:
        """Give the planner the size of the freshly loaded staging table (joins of a million rows)."""
        if self.postgres:
            self.conn.execute(text("ANALYZE dailyup_staging"))

    def drop_erroneous(self, import_id: int) -> None:
        """Remove the valid rows of keys that also had an erroneous row: such a record stays as it was."""
        errored = STAGING.alias("errored")
        self.conn.execute(delete(STAGING).where(
            STAGING.c.import_id == import_id, STAGING.c.error.is_(False),
            exists().where(errored.c.import_id == import_id, errored.c.table == STAGING.c.table,
                           errored.c.key == STAGING.c.key, errored.c.error.is_(True)),
        ))

    def lookup_texts(self, table: str) -> dict[str, str]:
        """Return a lookup list as ID -> Text, as this transaction sees it."""
        query = select(SNAPSHOT.c.key, SNAPSHOT.c.data).where(SNAPSHOT.c.table == table, SNAPSHOT.c.deleted.is_(False))
        return {row.key: row.data.get("Text") for row in self.conn.execute(query)}

    def count_staged(self, import_id: int, table: str) -> int:
        """Count the rows of ``table`` in staging, erroneous ones included."""
        return self.conn.execute(select(func.count()).select_from(STAGING)
                                 .where(STAGING.c.import_id == import_id, STAGING.c.table == table)).scalar_one()

    def count_delivered(self, table: str) -> int:
        """Count the rows of ``table`` in the snapshot that are still delivered."""
        return self.conn.execute(select(func.count()).select_from(SNAPSHOT)
                                 .where(SNAPSHOT.c.table == table, SNAPSHOT.c.deleted.is_(False))).scalar_one()

    # ------------------------------------------------------------ the diff
    def candidates(self, import_id: int, table: str, entity: str | None, *, page: int = 5000) -> Iterator[list[Candidate]]:
        """Yield pages of valid staged rows that are new, re-delivered, changed, or have an echo mark."""
        s, n = STAGING, SNAPSHOT
        joined = s.outerjoin(n, and_(n.c.table == s.c.table, n.c.key == s.c.key))
        echo: Any = null()
        written_at: Any = null()
        differs = [n.c.key.is_(None), n.c.deleted.is_(True), n.c.hash != s.c.hash]
        if entity is not None:
            joined = joined.outerjoin(ECHOES, and_(ECHOES.c.entity == entity, ECHOES.c.key == s.c.key))
            echo, written_at = ECHOES.c.data, ECHOES.c.written_at
            differs.append(ECHOES.c.key.is_not(None))
        query = (select(s.c.key, s.c.data, s.c.hash, s.c.raw_hash, n.c.data.label("old_data"), n.c.hash.label("old_hash"),
                        n.c.deleted, echo.label("echo"), written_at.label("echo_written_at"))
                 .select_from(joined)
                 .where(s.c.import_id == import_id, s.c.table == table, s.c.error.is_(False), or_(*differs))
                 .order_by(s.c.key).limit(page))
        after = ""
        while True:
            rows = self.conn.execute(query.where(s.c.key > after)).all()
            if rows:
                yield [Candidate(r.key, r.data, r.hash, r.old_data, r.old_hash, bool(r.deleted), r.echo,
                                 r.echo_written_at, r.raw_hash) for r in rows]
            if len(rows) < page:
                return
            after = rows[-1].key

    def raw_digests(self, table: str, *, then: str | None = None) -> dict[str, bytes | None]:
        """Return key -> raw digest (None where not known yet) of the rows of ``table`` still delivered.

        ``then`` names the table asked for next, if any: on PostgreSQL its digests are read
        meanwhile on a connection of its own.  The snapshot's rows of a table are the committed
        ones until this import writes them (after reading their digests), and no other import
        commits any while this one holds the import lock, so the other connection reads the
        very rows this transaction would.
        """
        ahead = self._digests_ahead
        self._digests_ahead = None
        if ahead is not None and ahead[0] == table:
            found = ahead[1].result()
        else:
            if ahead is not None:
                ahead[1].exception()    # asked for another table: let that read end (its outcome unused)
            found = None
        if then is not None and self.postgres:
            self._read_ahead(then)
        if found is not None:
            return found
        if not self.postgres:
            query = select(SNAPSHOT.c.key, SNAPSHOT.c.raw_hash).where(SNAPSHOT.c.table == table,
                                                                       SNAPSHOT.c.deleted.is_(False))
            return {key: digest for key, digest in self.conn.execute(query)}
        return _raw_digests_on(self.conn, table)

    def _read_ahead(self, table: str) -> None:
        """Read the digests of ``table`` on a connection of their own, for the next :meth:`raw_digests`."""
        if self._reader is None:
            self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dailyup-digests")
        self._digests_ahead = (table, self._reader.submit(_read_raw_digests, self._conn.engine, table))

    def has_rows(self, table: str) -> bool:
        """Whether the snapshot holds any row of ``table``, deleted ones included."""
        return self.conn.execute(select(SNAPSHOT.c.key).where(SNAPSHOT.c.table == table).limit(1)).first() is not None

    def delete_snapshot_rows(self, table: str, keys: Sequence[str]) -> None:
        """Remove these rows of ``table`` from the snapshot (rows this import stored and must not keep)."""
        for chunk in _chunks(keys):
            self.conn.execute(delete(SNAPSHOT).where(SNAPSHOT.c.table == table, SNAPSHOT.c.key.in_(chunk)))

    def echo_keys(self, entity: str) -> set[str]:
        """Return the keys of the records of ``entity`` that have an echo mark."""
        return set(self.conn.execute(select(ECHOES.c.key).where(ECHOES.c.entity == entity)).scalars())

    def refresh_raw_hashes(self, import_id: int, table: str) -> int:
        """Store the raw digest of staged rows whose values are the same as the snapshot's but not their text.

        Only the digest: the stored values stay those of the record's last change (the
        volatile columns included), and its ``import_id`` too.
        """
        s, n = STAGING, SNAPSHOT
        result = self.conn.execute(
            update(n).where(n.c.table == s.c.table, n.c.key == s.c.key, s.c.import_id == import_id,
                            s.c.table == table, s.c.error.is_(False), n.c.deleted.is_(False), n.c.hash == s.c.hash,
                            n.c.raw_hash.is_distinct_from(s.c.raw_hash))
            .values(raw_hash=s.c.raw_hash))
        return result.rowcount

    def mark_deleted(self, import_id: int, table: str, keys: Sequence[str]) -> int:
        """Mark these rows of ``table`` as no longer delivered (by ``import_id``); return how many."""
        now, count = utcnow(), 0
        if self.postgres:
            # A statement a key (sent together by the driver): each finds its row by the primary key, whatever the planner
            # knows of the table.  Right after a first delivery the snapshot has no statistics, and a list of
            # keys made PostgreSQL read every row of the table for each list.
            cursor = self.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                for chunk in _chunks(keys, 10 * _IN_CHUNK):
                    cursor.executemany('UPDATE dailyup_snapshot SET deleted = true, raw_hash = NULL, import_id = %s,'
                                       ' updated_at = %s WHERE "table" = %s AND key = %s AND NOT deleted',
                                       [(import_id, now, table, key) for key in chunk])
                    count += cursor.rowcount
            finally:
                cursor.close()
            return count
        for chunk in _chunks(keys):
            result = self.conn.execute(
                update(SNAPSHOT).where(SNAPSHOT.c.table == table, SNAPSHOT.c.key.in_(chunk),
                                       SNAPSHOT.c.deleted.is_(False))
                .values(deleted=True, raw_hash=None, import_id=import_id, updated_at=now))
            count += result.rowcount
        return count

    def insert_snapshot(self, table: str, import_id: int, rows: Sequence[Candidate]) -> None:
        """Add rows never delivered before."""
        self.insert_new(table, import_id, [(r.key, compact_json(r.data).decode(), r.hash, r.raw_hash) for r in rows])

    def insert_new(self, table: str, import_id: int, rows: Sequence[tuple[str, str, str, bytes | None]]) -> None:
        """Add rows never delivered before, each as (key, JSON text of its values, hash, raw digest)."""
        if rows and self.postgres:
            # The text psycopg would write for the time, made once instead of once a row.
            tail = f"\tf\t{import_id}\t{utcnow().isoformat(' ')}\n"
            head = f"{_text(table)}\t"
            self._copy("dailyup_snapshot", _SNAPSHOT_COLUMNS, [
                f"{head}{_text(key)}\t{_text(hashed)}\t{_json_copy_text(data)}\t{_bytea(raw)}{tail}"
                for key, data, hashed, raw in rows])
        elif rows:
            # The JSON text stored as it is (the column's type would encode it again).
            now = utcnow()
            self.conn.execute(insert(SNAPSHOT).values(data=bindparam("b_data", type_=Text())), [
                {"table": table, "key": key, "hash": hashed, "b_data": data, "raw_hash": raw, "deleted": False,
                 "import_id": import_id, "updated_at": now} for key, data, hashed, raw in rows])

    def update_snapshot(self, table: str, import_id: int, rows: Sequence[Candidate]) -> None:
        """Store the delivered values of known rows, changed by ``import_id``."""
        if not rows:
            return
        statement = (update(SNAPSHOT)
                     .where(SNAPSHOT.c.table == bindparam("b_table"), SNAPSHOT.c.key == bindparam("b_key"))
                     .values(hash=bindparam("b_hash"), data=bindparam("b_data", type_=JSON),
                             raw_hash=bindparam("b_raw", type_=LargeBinary()), deleted=False,
                             import_id=import_id, updated_at=bindparam("b_at", type_=UtcDateTime())))
        now = utcnow()
        self.conn.execute(statement, [{"b_table": table, "b_key": r.key, "b_hash": r.hash, "b_data": r.data,
                                       "b_raw": r.raw_hash, "b_at": now} for r in rows])

    def add_deltas(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append deltas (import_id, entity, change, key, changed_fields, echoed_fields) to the outbox, in order."""
        if rows and self.postgres:
            # One COPY keeps the rows' order, so the outbox ids do too.
            self._copy("dailyup_deltas", _DELTA_COLUMNS, [
                f"{r['import_id']}\t{_text(r['entity'])}\t{_text(r['change'])}\t{_text(r['key'])}\t"
                f"{_json_names(r.get('changed_fields'))}\t{_json_names(r.get('echoed_fields'))}\n" for r in rows])
        elif rows:
            self.conn.execute(insert(DELTAS), list(rows))

    def add_created(self, import_id: int, entity: str, keys: Sequence[str]) -> None:
        """Append a "created" delta of ``entity`` without changed or echoed fields for each key, in order."""
        if keys and self.postgres:
            head = f"{import_id}\t{_text(entity)}\tcreated\t"
            self._copy("dailyup_deltas", _DELTA_COLUMNS, [f"{head}{_text(key)}\t[]\t[]\n" for key in keys])
        elif keys:
            self.add_deltas([{"import_id": import_id, "entity": entity, "change": "created", "key": key,
                              "changed_fields": (), "echoed_fields": ()} for key in keys])

    def consume_echoes(self, entity: str, keys: Sequence[str]) -> None:
        """Forget echo marks a delivery left nothing to recognise of."""
        for chunk in _chunks(keys):
            self.conn.execute(delete(ECHOES).where(ECHOES.c.entity == entity, ECHOES.c.key.in_(chunk)))

    def narrow_echoes(self, entity: str, marks: dict[str, dict[str, Any]]) -> None:
        """Keep only these columns of echo marks (key -> the columns still to recognise)."""
        if marks:
            statement = (update(ECHOES).where(ECHOES.c.entity == entity, ECHOES.c.key == bindparam("b_key"))
                         .values(data=bindparam("b_data", type_=JSON)))
            self.conn.execute(statement, [{"b_key": key, "b_data": data} for key, data in marks.items()])
