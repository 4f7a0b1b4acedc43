"""Fixtures of the integration tests: migrated databases (SQLite file and a PostgreSQL schema)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from syncbridge.adapters.db.dailyup import SqlDailyUpStore
from syncbridge.adapters.db.migrate import upgrade
from tests.support.databases import emptied_engine, pg_schema

SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module")
def migrated_sqlite_url(tmp_path_factory) -> str:
    """A SQLite file at the newest migration, shared by the tests of a module."""
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'syncbridge.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="module")
def migrated_postgres_url(postgres_url) -> Iterator[str]:
    """A PostgreSQL schema at the newest migration, shared by the tests of a module."""
    with pg_schema(postgres_url) as url:
        upgrade(url)
        yield url


@pytest.fixture(params=SQL_BACKENDS)
def dailyup_store(request) -> Iterator[SqlDailyUpStore]:
    """An empty DailyUp store on each real database."""
    engine = emptied_engine(request.getfixturevalue(f"migrated_{request.param}_url"))
    yield SqlDailyUpStore(engine)
    engine.dispose()


@pytest.fixture
def topology(namespace):
    """The topology of the test's own namespace, with the default retry delays (a module may set its own)."""
    from producers.topology import build_topology

    return build_topology(namespace)


@pytest.fixture
def publisher(rabbitmq_url, topology):
    """A publisher with confirms on the real broker, for ``topology``; closed after the test."""
    from producers.publisher import Publisher

    publisher = Publisher(rabbitmq_url, topology)
    yield publisher
    publisher.close()
