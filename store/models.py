"""Tables of the service's own database, as SQLAlchemy declarative models.

The schema itself is created by the Alembic migrations in ``store/migrations``;
a new table is a new model here plus a new migration there.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Dialect, Double, Index, Integer, MetaData, String, Text, UniqueConstraint
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


class ActivityRecord(Base):
    """One action of the system, as shown in the activity log."""

    __tablename__ = "activity_log"
    # Low-selectivity filters are paired with the time so that "newest first,
    # limit n" reads the index in order; ids are selective enough on their own.
    __table_args__ = (
        Index(None, "direction", "at"),
        Index(None, "entity", "at"),
        Index(None, "result", "at"),
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


class OAuthTokenRecord(Base):
    """The OAuth grant and connection status of one provider ("zoho", "ameise")."""

    __tablename__ = "oauth_tokens"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Empty until the first grant: a status can be set before any token exists.
    access_token: Mapped[str | None] = mapped_column(Text)
    refresh_token: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[float | None] = mapped_column(Double)   # epoch seconds
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(32))
    status_detail: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
