"""The store on SQLAlchemy: SQLite for development and tests, PostgreSQL in production.

The schema comes from the Alembic migrations (:mod:`syncbridge.adapters.db.migrate`); this module
never creates tables. Every method runs in its own short transaction.
"""
from __future__ import annotations

import copy
import itertools
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Date,
    Engine,
    Table,
    and_,
    bindparam,
    cast,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlalchemy.pool import QueuePool

from syncbridge.adapters.db.models import (
    ActivityRecord,
    DailyUpEchoRecord,
    LinkRecord,
    OAuthTokenRecord,
    ProcessedEvent,
    RecordSyncRecord,
    utcnow,
)
from syncbridge.adapters.tokens import UNREADABLE_TOKEN, TokenCipher, UnreadableToken
from syncbridge.ports import ActivityCount, ActivityEntry, Link, LinkConflict, OAuthToken, RecordLease

log = logging.getLogger(__name__)

LINKS: Table = LinkRecord.__table__  # type: ignore[assignment]
PROCESSED: Table = ProcessedEvent.__table__  # type: ignore[assignment]
ACTIVITY: Table = ActivityRecord.__table__  # type: ignore[assignment]
TOKENS: Table = OAuthTokenRecord.__table__  # type: ignore[assignment]
RECORDS: Table = RecordSyncRecord.__table__  # type: ignore[assignment]
ECHOES: Table = DailyUpEchoRecord.__table__  # type: ignore[assignment]

# The columns of an attempt (ActivityEntry fields of the same names).
ATTEMPT_COLUMNS = ("source", "received_at", "attempt", "duration_ms", "error_kind", "error_code", "error_field")

# Dialects whose INSERT has ON CONFLICT; elsewhere a portable update-or-insert is used.
_CONFLICT_INSERTS: dict[str, Callable[[Table], Any]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}

# Seconds a PostgreSQL connection attempt may take (a host that drops packets would take minutes).
POSTGRES_CONNECT_TIMEOUT_S = 10

# Connections a process keeps to a server database, and no more: a thread that finds them all in use waits
# for one (up to POOL_TIMEOUT_S, then it is an outage like a refused connection).  Connections opened beyond
# the kept ones and closed again when handed back (SQLAlchemy's overflow) cost the client and the server a
# new session each time: a busy worker of 32 threads opened one per two or three records that way.
POOL_SIZE = 10
POOL_TIMEOUT_S = 30.0

# A pooled connection unused for this many seconds is tested before it is handed out.
PING_AFTER_IDLE_S = 5.0

# A concurrent insert of the same key can still fail on a second unique
# constraint (PostgreSQL checks only the conflict target atomically) or, on the
# portable path, on the key itself; the retry then finds the row and updates it.
_ATTEMPTS = 3


def make_engine(url: str | URL) -> Engine:
    """Create an engine suited to the database: SQLite file, SQLite in memory, or PostgreSQL."""
    url = make_url(url)
    if url.get_backend_name() != "sqlite":
        # Connections dropped by the server or a proxy are replaced, not handed out; a server that
        # does not answer at all fails a connection after a bounded time (unless the URL says otherwise).
        connect_args = {} if "connect_timeout" in url.query or url.get_backend_name() != "postgresql" \
            else {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}
        engine = create_engine(url, connect_args=connect_args, pool_size=POOL_SIZE, max_overflow=0,
                               pool_timeout=POOL_TIMEOUT_S)
        _ping_when_idle(engine)
        return engine

    in_memory = url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    if in_memory:
        # Each connection to ":memory:" is its own database: a pool of exactly one keeps one,
        # and hands it to one thread at a time (sharing it at once mixes their transactions).
        engine = create_engine(url, connect_args={"check_same_thread": False}, poolclass=QueuePool,
                               pool_size=1, max_overflow=0, pool_timeout=30)
    else:
        engine = create_engine(url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            # Web and worker processes write the same file: wait for the lock instead of failing.
            cursor.execute("PRAGMA busy_timeout=5000")
            if not in_memory:
                # Readers no longer block the writer, nor the writer the readers.
                cursor.execute("PRAGMA journal_mode=WAL")
        finally:
            cursor.close()

    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Test a pooled connection before it is handed out, once it lay unused for PING_AFTER_IDLE_S seconds.

    A server or proxy drops connections that sit idle; one handed back milliseconds ago
    is alive, and pinging it too would cost a round trip per transaction (a busy worker
    runs hundreds a second).  A ping that fails makes the pool replace the connection.
    """
    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("checked_in")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - any failure: the connection is gone
            raise DisconnectionError(str(exc)) from exc
        finally:
            try:
                cursor.close()
            except Exception:  # noqa: BLE001 - closing a dead cursor
                pass
        try:
            dbapi_connection.rollback()      # end the ping's transaction
        except Exception as exc:  # noqa: BLE001
            raise DisconnectionError(str(exc)) from exc


# Built INSERT ... ON CONFLICT statements by (dialect, table, columns given, keys, columns updated): their
# construction and cache key cost more than running them, so each is built once and run with its values.
_CONFLICT_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def _conflict_statement(conn: Connection, table: Table, columns: Sequence[str], keys: Sequence[str],
                        update_columns: Sequence[str] | None) -> Any:
    """INSERT of ``columns`` into ``table`` that on a conflict of ``keys`` updates ``update_columns`` (None: nothing)."""
    signature = (conn.dialect.name, table.name, tuple(columns), tuple(keys),
                 None if update_columns is None else tuple(update_columns))
    stmt = _CONFLICT_STATEMENTS.get(signature)
    if stmt is None:
        stmt = _CONFLICT_INSERTS[conn.dialect.name](table).values({name: bindparam(f"v_{name}", type_=table.c[name].type)
                                                                  for name in columns})
        if update_columns is None:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
        else:
            stmt = stmt.on_conflict_do_update(index_elements=list(keys),
                                              set_={column: stmt.excluded[column] for column in update_columns})
        _CONFLICT_STATEMENTS[signature] = stmt
    return stmt


def _upsert(conn: Connection, table: Table, values: Mapping[str, Any], keys: Sequence[str], update_columns: Sequence[str]) -> None:
    """Insert ``values``, or update ``update_columns`` of the row with the same ``keys``."""
    if conn.dialect.name in _CONFLICT_INSERTS:
        conn.execute(_conflict_statement(conn, table, list(values), keys, update_columns),
                     {f"v_{name}": value for name, value in values.items()})
        return
    where = and_(*(table.c[key] == values[key] for key in keys))
    changed = conn.execute(update(table).where(where).values({column: values[column] for column in update_columns}))
    if changed.rowcount == 0:
        conn.execute(insert(table).values(dict(values)))


def _insert_ignore(conn: Connection, table: Table, values: Mapping[str, Any], keys: Sequence[str]) -> None:
    """Insert ``values`` unless a row with the same ``keys`` exists."""
    if conn.dialect.name in _CONFLICT_INSERTS:
        conn.execute(_conflict_statement(conn, table, list(values), keys, None),
                     {f"v_{name}": value for name, value in values.items()})
        return
    where = and_(*(table.c[key] == values[key] for key in keys))
    if conn.execute(select(1).select_from(table).where(where)).first() is None:
        conn.execute(insert(table).values(dict(values)))


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
    return value.astimezone(UTC)


def _as_date(value: Any) -> date:
    """A day as the database returns it: a date (PostgreSQL) or ISO text (SQLite)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _utc_or_none(value: datetime | None) -> datetime | None:
    """A timestamp read by the driver, as UtcDateTime reads it: timezone-aware in UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _to_link(row: Any) -> Link:
    return Link(
        entity=row.entity, zoho_module=row.zoho_module, zoho_id=row.zoho_id, ameise_id=row.ameise_id,
        created_at=row.created_at, updated_at=row.updated_at,
    )


def _activity_values(entry: ActivityEntry, *, copied: bool = True) -> dict[str, Any]:
    """The row of an activity log entry (its time in UTC, now when it has none; its details copied unless not ``copied``)."""
    return {
        "at": utcnow() if entry.at is None else _as_utc(entry.at), "direction": entry.direction,
        "action": entry.action, "result": entry.result, "entity": entry.entity, "zoho_module": entry.zoho_module,
        "zoho_id": entry.zoho_id, "ameise_id": entry.ameise_id, "event_id": entry.event_id, "error": entry.error,
        "details": copy.deepcopy(dict(entry.details)) if copied else entry.details,
        **{name: getattr(entry, name) for name in ATTEMPT_COLUMNS},
    }


def _echo_values(entity: str, key: str, data: Mapping[str, Any], at: datetime | None = None) -> dict[str, Any]:
    """The row of a DailyUp echo mark (entity, key, the columns written, when)."""
    return {"entity": entity, "key": key, "data": dict(data), "written_at": at or utcnow()}


def _to_entry(row: Any) -> ActivityEntry:
    return ActivityEntry(
        direction=row.direction, action=row.action, result=row.result, entity=row.entity,
        zoho_module=row.zoho_module, zoho_id=row.zoho_id, ameise_id=row.ameise_id, event_id=row.event_id,
        error=row.error, details=dict(row.details or {}), at=row.at, id=row.id,
        **{name: getattr(row, name) for name in ATTEMPT_COLUMNS},
    )


class SqlTokenStore:
    """OAuth tokens and connection status in the ``oauth_tokens`` table, shared by all processes.

    Access and refresh tokens are stored encrypted by ``cipher`` (by default with the
    development key; :func:`syncbridge.bootstrap.build_store` passes SYNCBRIDGE_TOKEN_KEY).
    A token no configured key decrypts reads as none, and its connection as
    "reconnect_needed" saying so.
    """

    def __init__(self, engine: Engine, cipher: TokenCipher | None = None) -> None:
        self.engine = engine
        self.cipher = cipher or TokenCipher()

    def load(self, provider: str) -> OAuthToken | None:
        """Return the stored token of ``provider``, if any (None too when it cannot be decrypted)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(TOKENS).where(TOKENS.c.provider == provider)).first()
        if row is None or row.access_token is None:
            return None
        try:
            access, refresh = self.cipher.decrypt(row.access_token), self._decrypt(row.refresh_token)
        except UnreadableToken:
            log.warning("%s: %s", provider, UNREADABLE_TOKEN)
            return None
        return OAuthToken(access, refresh, row.expires_at, dict(row.extra or {}))

    def save(self, provider: str, token: OAuthToken) -> None:
        """Store a token (encrypted) and mark the connection active."""
        values = {
            "provider": provider, "access_token": self.cipher.encrypt(token.access_token),
            "refresh_token": None if token.refresh_token is None else self.cipher.encrypt(token.refresh_token),
            "expires_at": token.expires_at, "extra": dict(token.extra), "status": "active", "status_detail": "",
            "updated_at": utcnow(),
        }
        self._write(values)

    def _decrypt(self, stored: str | None) -> str | None:
        return None if stored is None else self.cipher.decrypt(stored)

    def set_status(self, provider: str, status: str, detail: str = "") -> None:
        """Set the connection status ("active", "reconnect_needed") and why."""
        values = {
            "provider": provider, "access_token": None, "refresh_token": None, "expires_at": None, "extra": {},
            "status": status, "status_detail": detail, "updated_at": utcnow(),
        }
        self._write(values, only=("status", "status_detail", "updated_at"))

    def status(self, provider: str) -> tuple[str, str]:
        """Return (status, detail); ("not_connected", "") when nothing is stored.

        An active connection whose token the configured keys cannot decrypt is "reconnect_needed"
        (for this process: another one may hold the right key, so nothing is written).
        """
        with self.engine.connect() as conn:
            row = conn.execute(
                select(TOKENS.c.status, TOKENS.c.status_detail, TOKENS.c.access_token)
                .where(TOKENS.c.provider == provider)
            ).first()
        if row is None:
            return ("not_connected", "")
        if row.status == "active" and row.access_token is not None and not self.cipher.readable(row.access_token):
            return ("reconnect_needed", UNREADABLE_TOKEN)
        return (row.status, row.status_detail)

    def _write(self, values: dict[str, Any], only: Sequence[str] | None = None) -> None:
        columns = only if only is not None else [key for key in values if key != "provider"]
        for attempt in itertools.count(1):
            try:
                with self.engine.begin() as conn:
                    _upsert(conn, TOKENS, values, ["provider"], columns)
                return
            except IntegrityError:
                if attempt == _ATTEMPTS:
                    raise


def take_row_lease(engine: Engine, key_column, owner_column, until_column, key: str, owner: str, *,
                   now: datetime, until: datetime) -> bool:
    """Take the lease in the row ``key`` of a lease table unless another owner holds an unexpired one.

    Free, expired, or ours already: one conditional UPDATE decides, atomically; a row that does not
    exist yet is inserted, and of two processes inserting it at once one wins.
    """
    table = key_column.table
    with engine.begin() as conn:
        taken = conn.execute(
            update(table).where(key_column == key)
            .where(or_(owner_column.is_(None), until_column < now, owner_column == owner))
            .values({owner_column.name: owner, until_column.name: until})
        ).rowcount
        if taken:
            return True
        if conn.execute(select(key_column).where(key_column == key)).first() is not None:
            return False
    try:
        with engine.begin() as conn:
            conn.execute(insert(table).values({key_column.name: key, owner_column.name: owner,
                                               until_column.name: until}))
        return True
    except IntegrityError:
        return False    # another process created the row (and holds the lease) meanwhile


# The statements of a record's sync, built once (their cache keys too, not on every call).
_PROCESSED_BY_ID = select(PROCESSED.c.event_id).where(PROCESSED.c.event_id == bindparam("event_id"))
_LINK_BY_ZOHO_ID = select(LINKS).where(LINKS.c.entity == bindparam("e"), LINKS.c.zoho_id == bindparam("z"))
_INSERT_ACTIVITY = insert(ACTIVITY)
_RELEASED = {"locked_by": None, "locked_until": None,
             "synced_from": func.coalesce(bindparam("s", type_=RECORDS.c.synced_from.type), RECORDS.c.synced_from)}
_RELEASE = update(RECORDS).where(RECORDS.c.key == bindparam("k"), RECORDS.c.locked_by == bindparam("o")) \
    .values(_RELEASED)
_RELEASE_CREATED = update(RECORDS).where(RECORDS.c.key == bindparam("k"), RECORDS.c.locked_by == bindparam("o")) \
    .values({**_RELEASED, "creating_since": None})
_CLEAR_CREATE_NOTE = update(RECORDS).where(RECORDS.c.key == bindparam("k")).values(creating_since=None)
_NOTE_CREATE = update(RECORDS).where(RECORDS.c.key == bindparam("k")) \
    .values(creating_since=bindparam("since", type_=RECORDS.c.creating_since.type))
# take_record's marker of a record row still to be inserted (the portable path).
_NEW_ROW: Any = object()


class _HotStatements:
    """The lease statement of a record's sync, which needs INSERT ... ON CONFLICT (PostgreSQL, SQLite)."""

    def __init__(self, conflict_insert: Callable[[Table], Any]) -> None:
        take = conflict_insert(RECORDS).values(
            key=bindparam("k"), locked_by=bindparam("o"),
            locked_until=bindparam("u", type_=RECORDS.c.locked_until.type))
        self.take = take.on_conflict_do_update(
            index_elements=["key"],
            set_={"locked_by": take.excluded.locked_by, "locked_until": take.excluded.locked_until},
            where=or_(RECORDS.c.locked_by.is_(None), RECORDS.c.locked_until < bindparam("n"),
                      RECORDS.c.locked_by == take.excluded.locked_by),
        ).returning(RECORDS.c.synced_from, RECORDS.c.creating_since)


_HOT: dict[str, _HotStatements] = {}

# PostgreSQL through psycopg: the end of a record's sync as ONE statement (its writes as data-modifying CTEs, the
# release the main statement), sent as it is, without SQLAlchemy's compiling and type processing per statement.
# The tables touched are different ones, so the parts cannot see or undo each other; a link whose number
# another record holds fails the whole statement, as it fails the transaction on the portable path.  The log
# entries and echo marks go as one JSON array each, read into rows of their tables in their order
# (json_populate_recordset): a statement of few parameters, whose parsing the driver keeps, and one text
# parameter to send instead of a list per column.  Their JSON columns (details, data) keep the text json.dumps
# gives them, as when they are written one by one.
_PG_DRIVERS = ("psycopg", "psycopg2")
_ACTIVITY_COLUMNS = ("at", "direction", "action", "result", "entity", "zoho_module", "zoho_id", "ameise_id",
                     "event_id", "error", "details", *ATTEMPT_COLUMNS)
_PG_FINISH: dict[tuple[bool, bool, bool, bool, bool, bool], str] = {}


def _pg_finish_sql(link: bool, entries: bool, processed: bool, echoes: bool, created: bool,
                   withdrawn: bool = False) -> str:
    """The statement that ends a record's sync (parameters: pyformat), built once per shape."""
    shape = (link, entries, processed, echoes, created, withdrawn)
    sql = _PG_FINISH.get(shape)
    if sql is not None:
        return sql
    parts = []
    if link:
        parts.append("l AS (INSERT INTO links (entity, zoho_module, zoho_id, ameise_id, created_at, updated_at) "
                     "VALUES (%(l_entity)s, %(l_module)s, %(l_zoho)s, %(l_ameise)s, %(now)s, %(now)s) "
                     "ON CONFLICT (entity, zoho_id) DO UPDATE SET zoho_module = excluded.zoho_module, "
                     "ameise_id = excluded.ameise_id, updated_at = excluded.updated_at)")
    if entries:
        columns = ", ".join(_ACTIVITY_COLUMNS)
        parts.append(f"a AS (INSERT INTO activity_log ({columns}) SELECT {columns} "
                     "FROM json_populate_recordset(NULL::activity_log, %(a)s::json) WITH ORDINALITY AS e ORDER BY "
                     "e.ordinality)")
    if processed:
        parts.append("p AS (INSERT INTO processed_events (event_id, outcome, processed_at) "
                     "VALUES (%(p_event)s, %(p_outcome)s, %(now)s) ON CONFLICT (event_id) DO NOTHING)")
    if echoes:
        parts.append("e AS (INSERT INTO dailyup_echoes (entity, key, data, written_at) "
                     "SELECT entity, key, data, %(now)s FROM json_populate_recordset(NULL::dailyup_echoes, %(e)s::json) "
                     "ON CONFLICT (entity, key) DO UPDATE SET data = excluded.data, written_at = excluded.written_at)")
    if created:
        # The lease released if it is still this sync's, and the create note cleared in any case (as
        # note_create(key, False): the record is linked, whoever holds its lease now), in the one statement.
        own = "record_syncs.locked_by = %(o)s"
        release = (f"UPDATE record_syncs SET locked_by = CASE WHEN {own} THEN NULL ELSE record_syncs.locked_by END, "
                   f"locked_until = CASE WHEN {own} THEN NULL ELSE record_syncs.locked_until END, "
                   f"synced_from = CASE WHEN {own} THEN coalesce(%(s)s, record_syncs.synced_from) "
                   "ELSE record_syncs.synced_from END, creating_since = NULL WHERE record_syncs.key = %(k)s")
    else:
        # A create note withdrawn is cleared with the lease, only if the lease is still this sync's.
        release = ("UPDATE record_syncs SET locked_by = NULL, locked_until = NULL, "
                   "synced_from = coalesce(%(s)s, record_syncs.synced_from)"
                   f"{', creating_since = NULL' if withdrawn else ''} "
                   "WHERE record_syncs.key = %(k)s AND record_syncs.locked_by = %(o)s")
    sql = _PG_FINISH[shape] = (f"WITH {', '.join(parts)} " if parts else "") + release
    return sql


# The lease (insert the record's row, or take a free / expired / own lease of it), then what the sync reads
# with it: whether the event was handled before and the record's link, in one statement after the write.
_PG_TAKE = ("INSERT INTO record_syncs (key, locked_by, locked_until) VALUES (%(k)s, %(o)s, %(u)s) "
            "ON CONFLICT (key) DO UPDATE SET locked_by = excluded.locked_by, locked_until = excluded.locked_until "
            "WHERE record_syncs.locked_by IS NULL OR record_syncs.locked_until < %(n)s "
            "OR record_syncs.locked_by = excluded.locked_by RETURNING synced_from, creating_since")
_PG_NOTE_CREATE = "UPDATE record_syncs SET creating_since = %(since)s WHERE key = %(k)s"
_PG_READ_PROCESSED = "SELECT EXISTS (SELECT 1 FROM processed_events WHERE event_id = %(e)s)"
_PG_READ_LINK = ("SELECT EXISTS (SELECT 1 FROM processed_events WHERE event_id = %(e)s), "
                 "l.entity, l.zoho_module, l.zoho_id, l.ameise_id, l.created_at, l.updated_at "
                 "FROM (SELECT 1) AS one LEFT JOIN links AS l ON l.entity = %(le)s AND l.zoho_id = %(lz)s")
# The same read, and a create noted as possibly under way when the record has no link and none is noted and the
# lease is this sync's (a data-modifying CTE): the last column says whether it was noted.
_PG_READ_LINK_NOTE = (
    "WITH l AS (SELECT entity, zoho_module, zoho_id, ameise_id, created_at, updated_at FROM links "
    "WHERE entity = %(le)s AND zoho_id = %(lz)s), "
    "p AS (SELECT EXISTS (SELECT 1 FROM processed_events WHERE event_id = %(e)s) AS seen), "
    "n AS (UPDATE record_syncs SET creating_since = %(n)s WHERE key = %(k)s AND locked_by = %(o)s "
    "AND creating_since IS NULL AND NOT EXISTS (SELECT 1 FROM l) AND NOT (SELECT seen FROM p) RETURNING 1) "
    "SELECT p.seen, l.entity, l.zoho_module, l.zoho_id, l.ameise_id, l.created_at, l.updated_at, "
    "EXISTS (SELECT 1 FROM n) FROM p LEFT JOIN l ON true")


def _hot_statements(dialect: str) -> _HotStatements | None:
    conflict_insert = _CONFLICT_INSERTS.get(dialect)
    if conflict_insert is None:
        return None
    if dialect not in _HOT:
        _HOT[dialect] = _HotStatements(conflict_insert)
    return _HOT[dialect]


class SqlStore:
    """The store on a SQLAlchemy engine (schema by :mod:`syncbridge.adapters.db.migrate`)."""

    def __init__(self, engine: Engine, *, token_cipher: TokenCipher | None = None,
                 now: Callable[[], datetime] = utcnow) -> None:
        """``now``: the clock of record leases (timezone-aware UTC)."""
        self.engine = engine
        self.tokens = SqlTokenStore(engine, token_cipher)
        self.now = now
        self._hot = _hot_statements(engine.dialect.name)
        self._pg_driver = engine.dialect.name == "postgresql" and engine.dialect.driver in _PG_DRIVERS
        self._json = getattr(engine.dialect, "_json_serializer", None) or json.dumps
        # On PostgreSQL a write of ONE statement runs on its own (autocommit): the statement is atomic by
        # itself, and BEGIN and COMMIT around it would be two more round trips to the server.
        self._single = engine.execution_options(isolation_level="AUTOCOMMIT") if self._pg_driver else engine

    @classmethod
    def from_url(cls, url: str | URL, *, token_key: str | None = None) -> SqlStore:
        """Create a store on a new engine for ``url``; ``token_key``: SYNCBRIDGE_TOKEN_KEY (default: the dev key)."""
        return cls(make_engine(url), token_cipher=None if token_key is None else TokenCipher(token_key))

    def find_link(self, entity: str, *, zoho_id: str | None = None, ameise_id: str | None = None) -> Link | None:
        """Return the link of a record by its id on either side (both must match when both are given)."""
        if zoho_id is None and ameise_id is None:
            raise ValueError("find_link needs zoho_id or ameise_id")
        query = select(LINKS).where(LINKS.c.entity == entity)
        if zoho_id is not None:
            query = query.where(LINKS.c.zoho_id == zoho_id)
        if ameise_id is not None:
            query = query.where(LINKS.c.ameise_id == ameise_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _to_link(row)

    def save_link(self, entity: str, zoho_module: str, zoho_id: str, ameise_id: str) -> Link:
        """Create or update the link of (entity, zoho_id).

        Raises LinkConflict when ``ameise_id`` is already linked to another Zoho record.
        """
        now = utcnow()
        values = {
            "entity": entity, "zoho_module": zoho_module, "zoho_id": zoho_id, "ameise_id": ameise_id,
            "created_at": now, "updated_at": now,
        }
        for attempt in itertools.count(1):
            try:
                with self.engine.begin() as conn:
                    _upsert(conn, LINKS, values, ["entity", "zoho_id"], ["zoho_module", "ameise_id", "updated_at"])
                    row = conn.execute(
                        select(LINKS).where(LINKS.c.entity == entity, LINKS.c.zoho_id == zoho_id)
                    ).one()
                return _to_link(row)
            except IntegrityError as exc:
                holder = self.find_link(entity, ameise_id=ameise_id)
                if holder is not None and holder.zoho_id != zoho_id:
                    raise LinkConflict(
                        f"{entity} {ameise_id} is already linked to Zoho record {holder.zoho_id}"
                    ) from exc
                if attempt == _ATTEMPTS:
                    raise

    def delete_link(self, entity: str, zoho_id: str) -> None:
        """Forget the link of (entity, zoho_id), once the CRM record is gone (idempotent)."""
        with self.engine.begin() as conn:
            conn.execute(LINKS.delete().where(LINKS.c.entity == entity, LINKS.c.zoho_id == zoho_id))

    def lock_record(self, key: str, owner: str, ttl: float) -> bool:
        """Take the lease of one record unless another owner holds an unexpired one."""
        now = self.now()
        until = now + timedelta(seconds=ttl)
        return take_row_lease(self.engine, RECORDS.c.key, RECORDS.c.locked_by, RECORDS.c.locked_until,
                              key, owner, now=now, until=until)

    def take_record(self, key: str, owner: str, ttl: float, *, event_id: str | None = None,
                    link: tuple[str, str] | None = None, note_create: bool = False) -> RecordLease | None:
        """Take the lease of one record (as :meth:`lock_record`) and read its state, in one transaction.

        ``event_id``: an event handled already is told first (``processed``; the lease is not
        taken); ``link``: (entity, Zoho id) of the link read with the lease; ``note_create``:
        note a create as possibly under way when there is no link and none is noted (``noted``).
        """
        now = self.now()
        until = now + timedelta(seconds=ttl)
        note = note_create and link is not None
        if self._pg_driver:
            return self._take_pg(key, owner, _as_utc(now), _as_utc(until), event_id, link, note)
        hot = self._hot
        # The write comes first: on SQLite a transaction that reads first and then writes fails at once
        # (not after the busy timeout) when another process wrote meanwhile.
        with self.engine.connect() as conn, conn.begin() as transaction:
            if hot is not None:
                # Insert the row, or take a free / expired / own lease of the existing one: one statement.
                row = conn.execute(hot.take, {"k": key, "o": owner, "u": until, "n": now}).first()
                lease = None if row is None else \
                    RecordLease(synced_from=row.synced_from, creating=row.creating_since is not None)
            else:
                lease = self._take_portable(conn, key, owner, now, until)
            if event_id is not None and conn.execute(_PROCESSED_BY_ID, {"event_id": event_id}).first() is not None:
                transaction.rollback()      # handled before: the lease is not taken
                return RecordLease(processed=True)
            if lease is None:
                return None
            if link is not None:
                found = conn.execute(_LINK_BY_ZOHO_ID, {"e": link[0], "z": link[1]}).first()
                lease = replace(lease, link=None if found is None else _to_link(found), link_read=True)
                if note and found is None and not lease.creating:
                    lease = replace(lease, noted=True)
                    if lease.synced_from is not _NEW_ROW:
                        conn.execute(_NOTE_CREATE, {"k": key, "since": now})
        if lease.synced_from is _NEW_ROW:
            return self._insert_record(key, owner, until, lease, now)
        return lease

    def _take_pg(self, key: str, owner: str, now: datetime, until: datetime, event_id: str | None,
                 link: tuple[str, str] | None, note: bool) -> RecordLease | None:
        """:meth:`take_record` on PostgreSQL: the lease, then the processed check and the link (and the create
        note) in one statement."""
        with self.engine.connect() as conn, conn.begin() as transaction:
            row = conn.exec_driver_sql(_PG_TAKE, {"k": key, "o": owner, "u": until, "n": now}).first()
            noting = note and row is not None and row[1] is None    # taken, and no create noted before
            if event_id is None and link is None:
                read = None
            elif link is None:
                read = conn.exec_driver_sql(_PG_READ_PROCESSED, {"e": event_id}).first()
            elif noting:
                read = conn.exec_driver_sql(_PG_READ_LINK_NOTE, {"e": event_id, "le": link[0], "lz": link[1],
                                                                 "k": key, "o": owner, "n": now}).first()
            else:
                read = conn.exec_driver_sql(_PG_READ_LINK, {"e": event_id, "le": link[0], "lz": link[1]}).first()
            if read is not None and read[0]:
                transaction.rollback()      # handled before: the lease is not taken (nor a create noted)
                return RecordLease(processed=True)
            if row is None:
                return None
            lease = RecordLease(synced_from=_utc_or_none(row[0]), creating=row[1] is not None)
            if link is not None and read is not None:
                found = None if read[1] is None else Link(
                    entity=read[1], zoho_module=read[2], zoho_id=read[3], ameise_id=read[4],
                    created_at=_utc_or_none(read[5]), updated_at=_utc_or_none(read[6]))
                lease = replace(lease, link=found, link_read=True, noted=noting and bool(read[7]))
        return lease

    def _take_portable(self, conn: Connection, key: str, owner: str, now: datetime,
                       until: datetime) -> RecordLease | None:
        taken = conn.execute(
            update(RECORDS).where(RECORDS.c.key == key)
            .where(or_(RECORDS.c.locked_by.is_(None), RECORDS.c.locked_until < now, RECORDS.c.locked_by == owner))
            .values(locked_by=owner, locked_until=until)
        ).rowcount
        row = conn.execute(select(RECORDS.c.synced_from, RECORDS.c.creating_since)
                           .where(RECORDS.c.key == key)).first()
        if taken:
            return RecordLease(synced_from=row.synced_from, creating=row.creating_since is not None)
        if row is not None:
            return None
        return RecordLease(synced_from=_NEW_ROW)     # inserted in a transaction of its own, after this one

    def _insert_record(self, key: str, owner: str, until: datetime, lease: RecordLease,
                       now: datetime) -> RecordLease | None:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(RECORDS).values(key=key, locked_by=owner, locked_until=until,
                                                    creating_since=now if lease.noted else None))
            return replace(lease, synced_from=None)
        except IntegrityError:
            return None     # another process created the row (and holds the lease) meanwhile

    def unlock_record(self, key: str, owner: str, *, synced_from: datetime | None = None) -> None:
        values: dict[str, Any] = {"locked_by": None, "locked_until": None}
        if synced_from is not None:
            values["synced_from"] = synced_from
        with self.engine.begin() as conn:
            conn.execute(update(RECORDS).where(RECORDS.c.key == key, RECORDS.c.locked_by == owner).values(**values))

    def last_synced_from(self, key: str) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(select(RECORDS.c.synced_from).where(RECORDS.c.key == key)).scalar()

    def note_create(self, key: str, creating: bool) -> None:
        # The record's row exists: its lease is held while this is called.
        if self._pg_driver:
            with self._single.begin() as conn:
                conn.exec_driver_sql(_PG_NOTE_CREATE, {"k": key, "since": utcnow() if creating else None})
            return
        with self.engine.begin() as conn:
            conn.execute(_NOTE_CREATE, {"k": key, "since": utcnow() if creating else None})

    def create_under_way(self, key: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(RECORDS.c.creating_since).where(RECORDS.c.key == key)).scalar() is not None

    def was_processed(self, event_id: str) -> bool:
        """Tell whether an event was already handled to the end."""
        with self.engine.connect() as conn:
            row = conn.execute(select(PROCESSED.c.event_id).where(PROCESSED.c.event_id == event_id)).first()
        return row is not None

    def mark_processed(self, event_id: str, outcome: str) -> None:
        """Remember that an event was handled; the first outcome stays."""
        values = {"event_id": event_id, "outcome": outcome, "processed_at": utcnow()}
        try:
            with self.engine.begin() as conn:
                _insert_ignore(conn, PROCESSED, values, ["event_id"])
        except IntegrityError:
            # Only the portable path gets here: someone else recorded the event first.
            pass

    def log(self, entry: ActivityEntry) -> ActivityEntry:
        """Append to the activity log; return the entry with its id and time (UTC)."""
        values = _activity_values(entry)
        with self.engine.begin() as conn:
            new_id = conn.execute(insert(ACTIVITY).values(values)).inserted_primary_key[0]
        return replace(entry, id=new_id, at=values["at"], details=values["details"])

    def remember_echo(self, entity: str, key: str, data: Mapping[str, Any]) -> None:
        """Note the DailyUp columns just written to Ameise (the DailyUp store's echo marks, on this database).

        A sync that has the store note its marks (``SyncDependencies.echoes``) has them written with
        :meth:`finish_record`, in its transaction, not in one of their own.
        """
        with self.engine.begin() as conn:
            _upsert(conn, ECHOES, _echo_values(entity, key, data), ["entity", "key"], ["data", "written_at"])

    def finish_record(self, key: str, owner: str, *, synced_from: datetime | None = None,
                      entries: Sequence[ActivityEntry] = (), processed: tuple[str, str] | None = None,
                      created: bool = False, link: Link | None = None,
                      echoes: Sequence[tuple[str, str, Mapping[str, Any]]] = (), withdrawn: bool = False) -> None:
        """End one record's sync in one transaction: link, log entries, processed mark, create note cleared,
        echo marks (as :meth:`remember_echo`), lock released (and with it a ``withdrawn`` create note).

        A link whose number another record holds fails the transaction; it is then done again
        without the link and with the create note kept, and LinkConflict raised.
        """
        if link is None:
            self._finish(key, owner, synced_from, entries, processed, created, None, echoes, withdrawn)
            return
        try:
            self._finish(key, owner, synced_from, entries, processed, created, link, echoes, withdrawn)
            return
        except IntegrityError as exc:
            conflict = exc
        self._finish(key, owner, synced_from, entries, processed, False, None, echoes, withdrawn)
        holder = self.find_link(link.entity, ameise_id=link.ameise_id)
        raise LinkConflict(f"{link.entity} {link.ameise_id} is already linked to Zoho record "
                           f"{holder.zoho_id if holder else '(unknown)'}") from conflict

    def _finish(self, key: str, owner: str, synced_from: datetime | None, entries: Sequence[ActivityEntry],
                processed: tuple[str, str] | None, created: bool, link: Link | None,
                echoes: Sequence[tuple[str, str, Mapping[str, Any]]] = (), withdrawn: bool = False) -> None:
        now = utcnow()
        if self._pg_driver:
            self._finish_pg(key, owner, synced_from, entries, processed, created, link, echoes, now, withdrawn)
            return
        with self.engine.begin() as conn:
            if link is not None:
                values = {"entity": link.entity, "zoho_module": link.zoho_module, "zoho_id": link.zoho_id,
                          "ameise_id": link.ameise_id, "created_at": now, "updated_at": now}
                _upsert(conn, LINKS, values, ["entity", "zoho_id"], ["zoho_module", "ameise_id", "updated_at"])
            if entries:
                # Written as they are: nothing of them is handed back to be changed.
                conn.execute(_INSERT_ACTIVITY, [_activity_values(entry, copied=False) for entry in entries])
            if processed is not None:
                _insert_ignore(conn, PROCESSED, {"event_id": processed[0], "outcome": processed[1],
                                                 "processed_at": now}, ["event_id"])
            for entity, echo_key, data in echoes:
                _upsert(conn, ECHOES, _echo_values(entity, echo_key, data, now), ["entity", "key"],
                        ["data", "written_at"])
            params = {"k": key, "o": owner, "s": synced_from}
            released = conn.execute(_RELEASE_CREATED if created or withdrawn else _RELEASE, params).rowcount
            if created and not released:
                # As note_create(key, False): the record is linked, whoever holds its lease now.
                conn.execute(_CLEAR_CREATE_NOTE, {"k": key})

    def _finish_pg(self, key: str, owner: str, synced_from: datetime | None, entries: Sequence[ActivityEntry],
                   processed: tuple[str, str] | None, created: bool, link: Link | None,
                   echoes: Sequence[tuple[str, str, Mapping[str, Any]]], now: datetime, withdrawn: bool) -> None:
        """:meth:`_finish` on PostgreSQL: one statement, on its own (autocommit)."""
        params: dict[str, Any] = {"k": key, "o": owner, "now": now,
                                  "s": None if synced_from is None else _as_utc(synced_from)}
        if link is not None:
            params.update(l_entity=link.entity, l_module=link.zoho_module, l_zoho=link.zoho_id,
                          l_ameise=link.ameise_id)
        dumps = self._json
        if entries:
            rows = [_activity_values(entry, copied=False) for entry in entries]
            for row in rows:
                for stamp in ("at", "received_at"):
                    if row[stamp] is not None:
                        row[stamp] = _as_utc(row[stamp]).isoformat()
            params["a"] = dumps(rows)
        if processed is not None:
            params.update(p_event=processed[0], p_outcome=processed[1])
        if echoes:
            params["e"] = dumps([{"entity": entity, "key": echo_key, "data": dict(data)}
                                 for entity, echo_key, data in echoes])
        sql = _pg_finish_sql(link is not None, bool(entries), processed is not None, bool(echoes), created,
                             withdrawn and not created)
        with self._single.begin() as conn:
            conn.exec_driver_sql(sql, params)

    def activities(
        self,
        *,
        direction: str | None = None,
        entity: str | None = None,
        result: str | None = None,
        action: str | None = None,
        zoho_id: str | None = None,
        ameise_id: str | None = None,
        event_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[ActivityEntry]:
        """Return activity log entries, newest first; ``since`` is inclusive, ``until`` exclusive."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        query = select(ACTIVITY)
        for column, value in (
            ("direction", direction), ("entity", entity), ("result", result), ("action", action),
            ("zoho_id", zoho_id), ("ameise_id", ameise_id), ("event_id", event_id),
        ):
            if value is not None:
                query = query.where(ACTIVITY.c[column] == value)
        if since is not None:
            query = query.where(ACTIVITY.c.at >= _as_utc(since))
        if until is not None:
            query = query.where(ACTIVITY.c.at < _as_utc(until))
        query = query.order_by(ACTIVITY.c.at.desc(), ACTIVITY.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_to_entry(row) for row in conn.execute(query)]

    def activity_counts(self, *, since: datetime, until: datetime) -> list[ActivityCount]:
        """Count the activity log per UTC day, direction, entity, action and result (``until`` exclusive).

        A delivery that succeeded is counted by the handler's own steps, not again by its attempt entry.
        """
        if self.engine.dialect.name == "postgresql":
            day = cast(func.timezone("UTC", ACTIVITY.c.at), Date)
        else:                   # SQLite keeps UTC text: its date() is the UTC day
            day = func.date(ACTIVITY.c.at)
        columns = (ACTIVITY.c.direction, ACTIVITY.c.entity, ACTIVITY.c.action, ACTIVITY.c.result)
        query = (select(day.label("day"), *columns, func.count().label("n"))
                 .where(ACTIVITY.c.at >= _as_utc(since), ACTIVITY.c.at < _as_utc(until),
                        or_(ACTIVITY.c.attempt.is_(None), ACTIVITY.c.result != "ok"))
                 .group_by(day, *columns).order_by(day))
        with self.engine.connect() as conn:
            return [ActivityCount(_as_date(row.day), row.direction, row.entity, row.action, row.result, row.n)
                    for row in conn.execute(query)]

    def ping(self) -> None:
        """Raise when the database cannot be reached."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
