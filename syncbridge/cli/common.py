"""What every command group of the ``syncbridge`` command shares: the group itself, settings, clear errors."""
from __future__ import annotations

from contextlib import contextmanager
from urllib.parse import urlsplit

import click

from syncbridge import __version__
from syncbridge.config import ConfigError, Settings

EPILOG = "Settings come from SYNCBRIDGE_* environment variables; `syncbridge settings` lists them."


def load_settings(**overrides) -> Settings:
    try:
        settings = Settings.from_env(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    for problem in (_database_url_problem(settings.database_url), _broker_url_problem(settings.effective_broker_url)):
        if problem:
            raise click.ClickException(problem)
    return settings


def _database_url_problem(url: str) -> str | None:
    """Why the database URL cannot be used at all (unparsable, unknown database, driver not installed), if so."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url).get_dialect().import_dbapi()
    except ArgumentError as exc:
        return f"SYNCBRIDGE_DATABASE_URL {without_password(url)}: {str(exc).strip().splitlines()[0]}"
    except ImportError as exc:
        return (f"SYNCBRIDGE_DATABASE_URL {without_password(url)}: its driver is not installed ({exc}); "
                "use sqlite:///FILE or postgresql+psycopg://...")
    return None


def _broker_url_problem(url: str) -> str | None:
    """Why the broker URL cannot be used at all (unknown transport, bad port), if so."""
    from kombu import Connection

    try:
        connection = Connection(url)
        connection.transport_cls  # noqa: B018 - resolves the transport
        connection.port  # noqa: B018 - parses the port
    except (KeyError, ValueError, ImportError) as exc:
        return f"SYNCBRIDGE_BROKER_URL {without_password(url)}: {exc.args[0] if exc.args else exc}"
    return None


def without_password(url: str) -> str:
    """A URL as it may be shown: without a password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


@contextmanager
def database_errors(settings: Settings):
    """Turn a database that cannot be opened or is not migrated, or a bad mapping file, into one ``Error:`` line."""
    from sqlalchemy.exc import SQLAlchemyError

    from syncbridge.errors import SchemaOutdated
    from syncbridge.mapping import MappingError

    try:
        yield
    except (SchemaOutdated, MappingError) as exc:
        raise click.ClickException(str(exc)) from exc
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise click.ClickException(f"database {without_password(settings.database_url)}: {reason}") from exc


def check_mapping(settings: Settings) -> None:
    """Fail with one line when the mapping file is missing or invalid, before anything starts."""
    from syncbridge.mapping import MappingError, load_mapping

    try:
        load_mapping(settings.mapping_file or None)
    except MappingError as exc:
        raise click.ClickException(f"SYNCBRIDGE_MAPPING_FILE: {exc}") from exc


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="syncbridge")
def main() -> None:
    """Keep Zoho CRM and Ameise (blau direkt) in sync, both ways."""

