"""Tables of the service's own database, as SQLAlchemy declarative models.

The schema itself is created by the Alembic migrations in ``store/migrations``;
a new table is a new model here plus a new migration there.
"""
from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import DateTime, TypeDecorator

# Explicit constraint and index names keep migrations identical on SQLite and
# PostgreSQL and let later migrations drop or alter them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY, not a BIGINT one.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and read back timezone-aware in UTC.

    SQLite keeps no offset, so every value is normalised to UTC before it is
    written; that also keeps SQLite's text comparison of timestamps correct.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON()}


class LinkRecord(Base):
    """A record known on both sides: Zoho record id <-> Kundennummer / Vertragsnummer."""

    __tablename__ = "links"
    __table_args__ = (
        UniqueConstraint("entity", "zoho_id"),
        UniqueConstraint("entity", "ameise_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entity: Mapped[str] = mapped_column(String(32))
    zoho_module: Mapped[str] = mapped_column(String(100))
    # Zoho ids are 18-19 digit strings; as integers they would lose their identity in JSON.
    zoho_id: Mapped[str] = mapped_column(String(64))
    ameise_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ProcessedEvent(Base):
    """An event handled to the end, so a redelivery is recognised."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(255))
    # Indexed so that old entries can be pruned by age.
    processed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class RecordSyncRecord(Base):
    """Per CRM record: which worker syncs it now (a lease), when its last finished sync began, a create under way."""

    __tablename__ = "record_syncs"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)   # "<module>/<record id>"
    locked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(nullable=True)
    synced_from: Mapped[datetime | None] = mapped_column(nullable=True)
    # Set just before a create is sent to Ameise, cleared once its number is linked: found set,
    # the create of a worker that died may have reached Ameise.
    creating_since: Mapped[datetime | None] = mapped_column(nullable=True)


# (index name, columns) of the Events page's partial indexes on the activity log.
EVENT_INDEXES = (
    ("ix_activity_log_events", ("at", "id")),
    ("ix_activity_log_events_direction", ("direction", "at", "id")),
    ("ix_activity_log_events_entity", ("entity", "at", "id")),
    ("ix_activity_log_events_result", ("result", "at", "id")),
    ("ix_activity_log_events_error_kind", ("error_kind", "at", "id")),
)


class ActivityRecord(Base):
    """One action of the system, as shown in the activity log."""

    __tablename__ = "activity_log"
    # Low-selectivity filters are paired with the time so that "newest first,
    # limit n" reads the index in order; ids are selective enough on their own.
    __table_args__ = (
        Index(None, "direction", "at"),
        Index(None, "entity", "at"),
        Index(None, "result", "at"),
        # The Events page (migration 0009_events): attempts only, each filter paired with the keyset (at, id).
        *(Index(name, *columns, postgresql_where=text("attempt IS NOT NULL"), sqlite_where=text("attempt IS NOT NULL"))
          for name, columns in EVENT_INDEXES),
        Index("ix_activity_log_error_trgm", "error", postgresql_using="gin", postgresql_ops={"error": "gin_trgm_ops"},
              postgresql_where=text("attempt IS NOT NULL")).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    direction: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(String(16))
    entity: Mapped[str | None] = mapped_column(String(32))
    zoho_module: Mapped[str | None] = mapped_column(String(100))
    zoho_id: Mapped[str | None] = mapped_column(String(64), index=True)
    ameise_id: Mapped[str | None] = mapped_column(String(64), index=True)
    event_id: Mapped[str | None] = mapped_column(String(255), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # An attempt of a consumer (migration 0009_events; the indexes for the Events page are made there).
    source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    received_at: Mapped[datetime | None] = mapped_column(nullable=True)
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_field: Mapped[str | None] = mapped_column(String(100), nullable=True)


class SavedViewRecord(Base):
    """A filter of the Events page saved by one operator under a name."""

    __tablename__ = "saved_views"
    __table_args__ = (UniqueConstraint("owner", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    query: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OAuthTokenRecord(Base):
    """The OAuth grant and connection status of one provider ("zoho", "ameise")."""

    __tablename__ = "oauth_tokens"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Empty until the first grant: a status can be set before any token exists.  Both tokens are
    # stored encrypted (Fernet, SYNCBRIDGE_TOKEN_KEY) by store.sql.SqlTokenStore.
    access_token: Mapped[str | None] = mapped_column(Text)
    refresh_token: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[float | None] = mapped_column(Double)   # epoch seconds
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(32))
    status_detail: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# ---------------------------------------------------------------- DailyUp (Ameise -> CRM)
class DailyUpImportRecord(Base):
    """One delivery taken in: where it came from, what became of it, and its counts."""

    __tablename__ = "dailyup_imports"
    # "The newest accepted delivery of a Hauptvermittler" decides whether a late one is superseded.
    __table_args__ = (Index(None, "hauptvermittler", "state", "delivered_on"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    file_name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # Unknown when the file name could not be read (the delivery is then rejected).
    hauptvermittler: Mapped[str | None] = mapped_column(String(32))
    delivered_on: Mapped[date | None] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(32))            # drop-folder, upload, cli
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    state: Mapped[str] = mapped_column(String(16))             # importing, accepted, published, superseded, rejected
    message: Mapped[str] = mapped_column(Text, default="")
    rows: Mapped[dict[str, Any]] = mapped_column(default=dict)           # table -> rows read
    errors: Mapped[int] = mapped_column(Integer, default=0)               # row errors, all of them
    deltas: Mapped[dict[str, Any]] = mapped_column(default=dict)         # "customer.created" -> n, "suppressed" -> n
    encodings: Mapped[dict[str, Any]] = mapped_column(default=dict)      # table -> encoding
    extra_columns: Mapped[dict[str, Any]] = mapped_column(default=dict)  # table -> unknown columns
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)        # stage -> seconds
    published_at: Mapped[datetime | None] = mapped_column()


class DailyUpRowErrorRecord(Base):
    """A row of a delivery that could not be used (only the first ones of an import are kept)."""

    __tablename__ = "dailyup_row_errors"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    import_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("dailyup_imports.id"), index=True)
    file: Mapped[str] = mapped_column(String(255))
    line: Mapped[int] = mapped_column(Integer)
    column: Mapped[str | None] = mapped_column(String(100))
    key: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)


class DailyUpSnapshotRecord(Base):
    """The last delivered state of one row of a DailyUp table (records and lookup lists alike)."""

    __tablename__ = "dailyup_snapshot"

    table: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    hash: Mapped[str] = mapped_column(String(64))                 # deliveries.row_hash: volatile columns left out
    # Values in column order as of the record's last change (or first delivery): the volatile columns
    # (LetzterLogin, GeaendertAm) are not rewritten when only they move.
    data: Mapped[dict[str, Any]] = mapped_column()
    # Digest of the row's text as last delivered (volatile columns left out; reader.raw_row_digest):
    # a row delivered with the same digest is unchanged and is not read again.  NULL: not known yet.
    raw_hash: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    # The import of the row's last change.  No foreign key (see migration 0015): only an import writes
    # these rows, in the transaction that made its import row, and imports are never deleted.
    import_id: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DailyUpStagingRecord(Base):
    """A row of the delivery being imported; emptied when its import ends.

    ``error`` rows only carry the key of a row that had an error: that record is kept as it was.
    """

    __tablename__ = "dailyup_staging"

    import_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    table: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    hash: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any] | None] = mapped_column()
    raw_hash: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    error: Mapped[bool] = mapped_column(Boolean, default=False)


class DailyUpDeltaRecord(Base):
    """The outbox: one delta of one import, published in id order."""

    __tablename__ = "dailyup_deltas"
    __table_args__ = (
        # Only the few unpublished deltas are indexed: "the next ones to publish" reads this in order.
        Index("ix_dailyup_deltas_unpublished", "id",
              postgresql_where=text("published_at IS NULL"), sqlite_where=text("published_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No foreign key, as in the snapshot (see migration 0015).
    import_id: Mapped[int] = mapped_column(BigInteger, index=True)
    entity: Mapped[str] = mapped_column(String(16))         # customer, contract
    change: Mapped[str] = mapped_column(String(16))         # created, changed, deleted
    key: Mapped[str] = mapped_column(String(64))
    changed_fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Columns delivered as the CRM -> Ameise direction wrote them (None in rows older than this column).
    echoed_fields: Mapped[list[str] | None] = mapped_column(JSON, nullable=True, default=list)
    published_at: Mapped[datetime | None] = mapped_column()


class DailyUpEchoRecord(Base):
    """What the CRM -> Ameise direction last wrote to a record, to recognise it in the next delivery."""

    __tablename__ = "dailyup_echoes"

    entity: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column()          # DailyUp columns, as the mapping's ameise_to_dailyup rules give them
    written_at: Mapped[datetime] = mapped_column(default=utcnow)


# ---------------------------------------------------------------- dead letters
class DeadLetterRecord(Base):
    """A message of the dead-letter queue, kept whole for ops to look at, replay or discard."""

    __tablename__ = "dead_letters"
    # Ops filter by state, work queue or kind and read the newest first; the record id is selective alone.
    __table_args__ = (
        Index(None, "state", "dead_lettered_at"),
        Index(None, "queue", "dead_lettered_at"),
        Index(None, "kind", "dead_lettered_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # SHA-256 of the message as delivered: a redelivery of the same dead letter is not a second row.
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    queue: Mapped[str] = mapped_column(String(64))                 # work queue it came from: crm-to-ameise, ...
    kind: Mapped[str] = mapped_column(String(32))                  # contract, rejected, delivery_limit, ...
    state: Mapped[str] = mapped_column(String(16))                 # dead, replayed, discarded
    # Zoho record id, Kundennummer or Vertragsnummer, read from the body when it was archived.
    record: Mapped[str | None] = mapped_column(String(64), index=True)
    exchange: Mapped[str] = mapped_column(String(255))             # original exchange and routing key
    routing_key: Mapped[str] = mapped_column(String(255))
    message_id: Mapped[str | None] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    headers: Mapped[dict[str, Any]] = mapped_column()              # every header, unknown ones too
    body: Mapped[bytes] = mapped_column(LargeBinary)               # the message exactly as it was sent
    reason: Mapped[str] = mapped_column(Text)                      # the last error: why it is dead
    first_error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int | None] = mapped_column(Integer)
    first_failed_at: Mapped[datetime | None] = mapped_column()
    dead_lettered_at: Mapped[datetime] = mapped_column(index=True)
    archived_at: Mapped[datetime] = mapped_column(default=utcnow)
    replays: Mapped[int] = mapped_column(Integer, default=0)
    replayed_by: Mapped[str | None] = mapped_column(String(255))
    replayed_at: Mapped[datetime | None] = mapped_column()
    replay_error: Mapped[str | None] = mapped_column(Text)          # why the last replay was refused
    discarded_by: Mapped[str | None] = mapped_column(String(255))
    discarded_at: Mapped[datetime | None] = mapped_column()
    note: Mapped[str | None] = mapped_column(Text)
    # What failed (kind, system, code, field): the dashboard's issues group by it.
    cause: Mapped[str | None] = mapped_column(String(255), index=True)
    # An operator's correction of the body, replayed instead of it; ``body`` stays as it came.
    corrected_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    corrected_by: Mapped[str | None] = mapped_column(String(255))
    corrected_at: Mapped[datetime | None] = mapped_column()


# ---------------------------------------------------------------- the dashboard's operators
class OperatorRecord(Base):
    """A person who may sign in to the dashboard; the password only as its hash."""

    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))                  # viewer, operator, admin
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditRecord(Base):
    """One operator action: who, what, on which thing, when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class FailedLoginRecord(Base):
    """A failed sign-in, once under the account's and once under the client address's key (both hashed)."""

    __tablename__ = "failed_logins"
    __table_args__ = (Index(None, "key", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(80))                   # "account:<sha256>" or "address:<sha256>"
    at: Mapped[datetime] = mapped_column()


class DirectionPauseRecord(Base):
    """A direction paused by an operator (no row: the direction runs)."""

    __tablename__ = "direction_pauses"

    direction: Mapped[str] = mapped_column(String(32), primary_key=True)
    paused_by: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text, default="")
    paused_at: Mapped[datetime] = mapped_column()


# ---------------------------------------------------------------- issues and bulk jobs of the dashboard
class IssueStateRecord(Base):
    """What operators said of one cause of dead letters (no row: open)."""

    __tablename__ = "issue_states"

    cause: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))                 # open, acknowledged, resolved
    acknowledged_by: Mapped[str | None] = mapped_column(String(255))
    acknowledged_at: Mapped[datetime | None] = mapped_column()
    resolved_by: Mapped[str | None] = mapped_column(String(255))
    resolved_at: Mapped[datetime | None] = mapped_column()


class JobRecord(Base):
    """A bulk replay or discard run in the background by the dashboard; progress and a cancel flag."""

    __tablename__ = "dashboard_jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    action: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), index=True)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column()
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)


class SweepLeaseRecord(Base):
    """A lease across processes: one catch-up sweep (or one backfill) at a time."""

    __tablename__ = "sweep_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)


class SweepModuleRecord(Base):
    """Per synced CRM module: the sweep's watermark and how far its backfill got."""

    __tablename__ = "sweep_modules"

    module: Mapped[str] = mapped_column(String(100), primary_key=True)
    watermark: Mapped[datetime | None] = mapped_column(nullable=True)
    backfill_cursor: Mapped[str | None] = mapped_column(Text, nullable=True)
    backfill_queued: Mapped[int | None] = mapped_column(Integer, nullable=True)
    backfill_pages: Mapped[int | None] = mapped_column(Integer, nullable=True)
    backfill_finished: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    backfill_started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    backfill_updated_at: Mapped[datetime | None] = mapped_column(nullable=True)


class CrmDeletedRecord(Base):
    """A record deleted in the CRM, as the sweep saw it."""

    __tablename__ = "crm_deleted_records"

    module: Mapped[str] = mapped_column(String(100), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    deleted_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)
    seen_at: Mapped[datetime] = mapped_column()
    name: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(32), default="sweep")


# ---------------------------------------------------------------- Zoho API credits
class ZohoCreditRecord(Base):
    """The Zoho API credits of one minute, call type and purpose (a rolling 24 h reads at most 1,440 minutes)."""

    __tablename__ = "zoho_credits"

    bucket: Mapped[datetime] = mapped_column(primary_key=True)    # the minute's start, UTC
    call: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32), primary_key=True)
    credits: Mapped[int] = mapped_column(BigInteger, default=0)
    calls: Mapped[int] = mapped_column(BigInteger, default=0)
    records: Mapped[int] = mapped_column(BigInteger, default=0)


# ---------------------------------------------------------------- first-time linking
class LinkRunRecord(Base):
    """One `syncbridge link propose`: when, by whom, and how many pairs of each kind it found."""

    __tablename__ = "link_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    started_at: Mapped[datetime] = mapped_column()
    started_by: Mapped[str] = mapped_column(String(255))
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)


class LinkProposalRecord(Base):
    """A CRM record and an Ameise record that may be one; nothing is linked until it is accepted."""

    __tablename__ = "link_proposals"
    __table_args__ = (Index("ix_link_proposals_entity_ameise_key", "entity", "ameise_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("link_runs.id"))
    entity: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    ameise_key: Mapped[str] = mapped_column(String(64))
    zoho_module: Mapped[str] = mapped_column(String(100))
    zoho_id: Mapped[str] = mapped_column(String(64), index=True)
    crm_number: Mapped[str] = mapped_column(String(64), default="")
    score: Mapped[int] = mapped_column(Integer)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), index=True)
    ameise_label: Mapped[str] = mapped_column(Text, default="")
    crm_label: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str | None] = mapped_column(String(255))
    decided_at: Mapped[datetime | None] = mapped_column()
