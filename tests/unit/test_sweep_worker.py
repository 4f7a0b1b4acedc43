"""The sweep worker's loop and the sweep commands' answers."""
from __future__ import annotations

import threading

import pytest
from kombu import Connection

from consumers.sweep import SweepWorker
from syncbridge.errors import Unavailable
from syncbridge.handlers.sweep import BulkStopped
from tests.support.cli import cli, fresh_sqlite_environment
from tests.support.waiting import wait_for

MEMORY = "memory://localhost/"


@pytest.fixture
def database_url(monkeypatch, tmp_path) -> str:
    """A fresh SQLite file for the commands, and nothing else of the calling shell's settings."""
    return fresh_sqlite_environment(monkeypatch, tmp_path)


def _run(worker: SweepWorker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def test_the_worker_sweeps_on_its_interval_and_a_failed_sweep_is_tried_again():
    calls = []

    def sweep():
        calls.append(1)
        if len(calls) == 1:
            raise Unavailable("Zoho away")

    worker = SweepWorker(Connection(MEMORY), sweep, interval=0.05)
    thread = _run(worker)
    wait_for(lambda: len(calls) >= 3, timeout=5, what="three rounds")
    worker.should_stop = True
    thread.join(5)
    assert not thread.is_alive()


def test_a_worker_whose_sweep_is_off_idles_until_stopped_and_a_stop_in_the_throttle_ends_it():
    calls = []
    idle = SweepWorker(Connection(MEMORY), lambda: calls.append(1), interval=None)
    thread = _run(idle)
    wait_for(lambda: thread.is_alive(), timeout=5)
    idle.should_stop = True
    thread.join(5)
    assert not thread.is_alive() and calls == []

    def stopped():
        raise BulkStopped()

    busy = SweepWorker(Connection(MEMORY), stopped, interval=3600)
    thread = _run(busy)
    thread.join(5)
    assert not thread.is_alive()


def test_the_commands_say_clearly_what_they_cannot_do(database_url):  # noqa: F811 - the fixture
    unknown = cli("backfill", "Leads")
    assert unknown.exit_code == 1
    assert "not synced: Leads; synced modules: Contacts, Accounts, Deals" in unknown.output
    local = cli("sweep", "run")
    assert local.exit_code == 1 and "SYNCBRIDGE_BROKER_URL" in local.output and "Traceback" not in local.output
    assert "db upgrade" in cli("sweep", "status").output          # an outdated database: one clear line
    assert cli("db", "upgrade").exit_code == 0
    status = cli("sweep", "status", SYNCBRIDGE_SWEEP_MINUTES="15")
    assert status.exit_code == 0, status.output
    assert "catch-up sweep: every 15 min" in status.output and "Contacts: watermark none yet" in status.output
    assert cli("sweep", "deleted").output.strip() == "no deleted records seen"
    assert "--estimate" in cli("backfill", "--help").output
