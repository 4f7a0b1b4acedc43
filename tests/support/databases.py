"""Test databases: PostgreSQL schemas, emptied engines and the difference between models and migrations."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from syncbridge.adapters.db.models import Base
from syncbridge.adapters.db.sql import make_engine


@contextmanager
def pg_schema(postgres_url: str) -> Iterator[str]:
    """Yield a URL whose connections work in a new, empty schema; drop it afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def empty_database(database_url: str) -> None:
    """Delete every row of the tables the database has (a database that outlives a test's simulators)."""
    from sqlalchemy import inspect

    engine = make_engine(database_url)
    try:
        present = set(inspect(engine).get_table_names())
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                if table.name in present:
                    conn.execute(table.delete())
    finally:
        engine.dispose()


def emptied_engine(url: str):
    engine = make_engine(url)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    return engine


def schema_differences(url: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True,
                                                             "include_object": _made_on(conn.dialect.name)})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def _made_on(dialect: str):
    """Leave out what the models make on another database only (``Index(...).ddl_if(dialect=...)``)."""
    def include(obj, _name, _type, _reflected, _compare_to) -> bool:
        condition = getattr(obj, "_ddl_if", None)
        return condition is None or condition.dialect is None or condition.dialect == dialect
    return include
