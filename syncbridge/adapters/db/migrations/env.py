"""Alembic environment: run the migrations against the database store.migrate hands over.

There is no alembic.ini: :func:`syncbridge.adapters.db.migrate.alembic_config` puts either a
``connection`` or a ``database_url`` into ``config.attributes``.
"""
from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from syncbridge.adapters.db.models import Base
from syncbridge.adapters.db.sql import make_engine

config = context.config
target_metadata = Base.metadata


def _configure(**kwargs) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    """Emit the migration SQL for the configured URL without connecting."""
    url = config.attributes["database_url"]
    # SQLite cannot ALTER most things; batch mode recreates the table instead.
    _configure(url=url, literal_binds=True, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the given connection, or on a new engine for the URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    engine = make_engine(config.attributes["database_url"])
    try:
        with engine.connect() as connection:
            _run_on(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
