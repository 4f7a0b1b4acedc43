"""Fixtures shared by all tiers.

Tests that need RabbitMQ or PostgreSQL use the ``rabbitmq_url`` / ``postgres_url``
fixtures: without a reachable server they FAIL with instructions, never skip.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from syncbridge.adapters.db import migrate
from syncbridge.adapters.db.dead_letters import SqlDeadLetterStore
from syncbridge.adapters.db.sql import SqlStore

RABBITMQ_URL = os.environ.get("SYNCBRIDGE_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
# Every retry delay a test may configure (seconds): the namespace's retry queues of all of them are deleted.
RETRY_DELAYS_USED = (0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 3, 4, 5, 6, 7, 8, 10, 15, 20, 30, 60, 120, 600, 3600)
POSTGRES_ADMIN_URL = os.environ.get("SYNCBRIDGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


SCRATCH_ON_TMPFS = "/dev/shm"


def pytest_configure(config) -> None:
    """Scratch files (each test's SQLite database above all) on tmpfs where the machine has one.

    A SQLite commit waits for an fsync, about 1.5 ms on a virtual disk and nothing on tmpfs;
    the service's own files stay wherever it is configured to put them.  An explicit
    ``TMPDIR`` wins.
    """
    if not os.environ.get("TMPDIR") and os.path.isdir(SCRATCH_ON_TMPFS) and os.access(SCRATCH_ON_TMPFS, os.W_OK):
        os.environ["TMPDIR"] = SCRATCH_ON_TMPFS      # processes the tests start use it too
        tempfile.tempdir = None                      # computed again from TMPDIR at the next use


@pytest.fixture(autouse=True)
def quick_password_hashing(request, monkeypatch):
    """Dashboard passwords hashed with few PBKDF2 rounds instead of scrypt (0.1 s per hash and check).

    The service hashes with werkzeug's default; the tests that check it carry the
    ``real_password_hashing`` marker.  A check reads the method from the stored hash, so
    signing in works the same way either way.
    """
    if request.node.get_closest_marker("real_password_hashing"):
        return
    from werkzeug import security

    real = security.generate_password_hash
    monkeypatch.setattr(security, "generate_password_hash",
                        lambda password, method="pbkdf2:sha256:1000", salt_length=16: real(password, method,
                                                                                           salt_length))


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """URL of a reachable RabbitMQ; fails the test when there is none."""
    from kombu import Connection

    try:
        with Connection(RABBITMQ_URL, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=2, interval_start=0.5)
    except Exception as exc:  # noqa: BLE001 - any failure means "no broker"
        pytest.fail(
            f"RabbitMQ is not reachable at {RABBITMQ_URL} ({exc!r}). "
            "Start it (`rabbitmq-server -detached`) or set SYNCBRIDGE_TEST_RABBITMQ_URL.",
            pytrace=False,
        )
    return RABBITMQ_URL


@pytest.fixture
def namespace(request) -> str:
    """A fresh exchange/queue name prefix; its RabbitMQ objects are deleted afterwards."""
    ns = f"sbtest-{uuid.uuid4().hex[:10]}"
    yield ns
    if "rabbitmq_url" in request.fixturenames:
        from kombu import Connection

        from producers.topology import build_topology

        # Tests set their own retry delays too: their queues go as well (deleting a missing one is no error),
        # so quorum queues do not pile up on a broker that runs the suite again and again.
        topology = build_topology(ns, retry_delays=RETRY_DELAYS_USED)
        try:
            with Connection(RABBITMQ_URL, connect_timeout=3) as conn:
                channel = conn.channel()
                for queue in topology.queues:
                    channel.queue_delete(queue.name)
                for exchange in topology.exchanges:
                    channel.exchange_delete(exchange.name)
        except Exception:  # noqa: BLE001 - cleanup must not mask the test's result
            pass


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a fresh, empty PostgreSQL database for this test session; dropped at the end."""
    import psycopg

    admin = make_url(POSTGRES_ADMIN_URL)
    name = f"syncbridge_test_{uuid.uuid4().hex[:10]}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({exc!r}). "
            "Start it (`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`) "
            "or set SYNCBRIDGE_TEST_POSTGRES_URL.",
            pytrace=False,
        )
    yield admin.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """A SQLite file migrated to the newest revision once per session: each test gets a copy of it."""

    path = tmp_path_factory.mktemp("migrated") / "syncbridge.db"
    migrate.upgrade(f"sqlite:///{path}")
    # Everything in the one file: a copy must not miss pages still in the write-ahead log.
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return path


@pytest.fixture
def database_url(tmp_path, migrated_sqlite) -> str:
    """A migrated SQLite file of this test (a copy of the session's migrated file, as migrating takes 0.4 s)."""

    path = tmp_path / "syncbridge.db"
    shutil.copyfile(migrated_sqlite, path)
    return f"sqlite:///{path}"


@pytest.fixture
def store(database_url):
    """The SQL store on ``database_url``."""

    store = SqlStore.from_url(database_url)
    yield store
    store.engine.dispose()


@pytest.fixture
def letters(store):
    """The dead-letter store on the engine of ``store``."""

    return SqlDeadLetterStore(store.engine)
