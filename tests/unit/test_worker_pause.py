"""The worker loop honours the dashboard's pause flag: it stops consuming while paused and comes back on resume."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from syncbridge.adapters.db.operators import SqlOperatorStore
from syncbridge.bootstrap import direction_paused, run_unless_paused
from syncbridge.handlers.overview import pause_direction, resume_direction
from tests.support.waiting import wait_for


class FakeWorker:
    """Consumes (counts polls) until ``should_stop``, like kombu's ConsumerMixin."""

    def __init__(self) -> None:
        self.should_stop = False
        self.runs = 0
        self.running = threading.Event()

    def run(self) -> None:
        self.runs += 1
        self.running.set()
        try:
            while not self.should_stop:
                threading.Event().wait(0.01)
        finally:
            self.running.clear()


def start(worker, paused, stop):
    thread = threading.Thread(target=run_unless_paused, args=(worker, "crm-to-ameise", paused, stop, 0.02),
                              daemon=True)
    thread.start()
    return thread


def test_the_worker_waits_while_paused_runs_when_resumed_and_stops_on_a_pause(store):
    operators = SqlOperatorStore(store.engine)
    paused = direction_paused(SimpleNamespace(store=store), "crm_to_ameise")
    pause_direction(operators, "crm_to_ameise", by="operator", reason="")
    worker, stop = FakeWorker(), threading.Event()
    thread = start(worker, paused, stop)
    try:
        wait_for(lambda: paused() and thread.is_alive(), what="the worker waiting")
        assert worker.runs == 0
        resume_direction(operators, "crm_to_ameise", by="operator")
        wait_for(worker.running.is_set, what="the worker consuming")
        pause_direction(operators, "crm_to_ameise", by="operator", reason="")
        wait_for(lambda: not worker.running.is_set(), what="the worker stopping")
        resume_direction(operators, "crm_to_ameise", by="operator")
        wait_for(lambda: worker.runs == 2 and worker.running.is_set(), what="the worker consuming again")
        # The other direction's flag does not touch it.
        pause_direction(operators, "ameise_to_crm", by="operator", reason="")
        assert not paused()
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive() and not worker.running.is_set()


def test_a_stop_while_paused_ends_the_loop_without_consuming(store):
    pause_direction(SqlOperatorStore(store.engine), "crm_to_ameise", by="operator", reason="")
    worker, stop = FakeWorker(), threading.Event()
    thread = start(worker, direction_paused(SimpleNamespace(store=store), "crm_to_ameise"), stop)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive() and worker.runs == 0


def test_an_unreadable_flag_keeps_the_last_answer(store):
    paused = direction_paused(SimpleNamespace(store=store), "crm_to_ameise")
    pause_direction(SqlOperatorStore(store.engine), "crm_to_ameise", by="operator", reason="")
    assert paused()
    with store.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE direction_pauses")
    with pytest.raises(Exception, match="direction_pauses"):
        SqlOperatorStore(store.engine).paused_directions()
    assert paused()


def test_an_in_memory_store_keeps_no_pause_flags():
    assert direction_paused(SimpleNamespace(store=object()), "crm_to_ameise")() is False
