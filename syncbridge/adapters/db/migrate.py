"""Bring the service's database schema up to date with Alembic, without an alembic.ini."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from syncbridge.adapters.db.sql import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    """Build the Alembic configuration for the migrations shipped with this package.

    The URL travels in ``config.attributes`` (read by ``migrations/env.py``), not
    in an ini option, so that a percent-encoded password survives. To migrate on
    an existing connection, set ``config.attributes["connection"]``.
    """
    config = Config()
    # Ini options go through configparser interpolation, where "%" is special.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = str(database_url)
    return config


def upgrade(database_url: str, revision: str = "head", *, token_key: str | None = None) -> None:
    """Migrate the database at ``database_url`` up to ``revision``.

    ``token_key`` (SYNCBRIDGE_TOKEN_KEY) encrypts the stored OAuth tokens; None reads it from the environment.
    """
    config = alembic_config(database_url)
    config.attributes["token_key"] = token_key
    command.upgrade(config, revision)


def current(database_url: str) -> str | None:
    """Return the revision the database is at, or None when it was never migrated."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def is_up_to_date(database_url: str) -> bool:
    """Tell whether the database is at the newest revision of the shipped migrations."""
    heads = set(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return set(MigrationContext.configure(connection).get_current_heads()) == heads
    finally:
        engine.dispose()
