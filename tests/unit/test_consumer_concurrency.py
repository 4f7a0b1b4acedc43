"""The CRM -> Ameise consumer with many records in flight: order per record, acks on its own thread, a clean stop.

On kombu's in-process broker (memory://) with a MemoryStore; the handler is a plain
function that the test holds and releases through events, so nothing waits on time.
"""
from __future__ import annotations

import threading

import pytest

from consumers.inflight import InFlight
from simulators.fakes.store import MemoryStore
from syncbridge.handlers import SyncResult
from syncbridge.messages import SyncCrmRecordToAmeise
from tests.support.queues import event_body, make_consumer, send, waiting
from tests.support.waiting import wait_for


class Held:
    """A handler that notes each command and waits while the test holds its record."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: list[tuple[str, str]] = []
        self.finished: list[tuple[str, str]] = []
        self.active: set[str] = set()
        self.overlaps: list[str] = []           # a record handled twice at the same time
        self.max_active = 0
        self.gates: dict[str, threading.Event] = {}

    def hold(self, record_id: str) -> threading.Event:
        return self.gates.setdefault(record_id, threading.Event())

    def __call__(self, command: SyncCrmRecordToAmeise) -> SyncResult:
        with self.lock:
            if command.record_id in self.active:
                self.overlaps.append(command.record_id)
            self.active.add(command.record_id)
            self.started.append((command.record_id, command.event_id))
            self.max_active = max(self.max_active, len(self.active))
        gate = self.gates.get(command.record_id)
        if gate is not None:
            assert gate.wait(timeout=20)
        with self.lock:
            self.active.discard(command.record_id)
            self.finished.append((command.record_id, command.event_id))
        return SyncResult("updated", "customer", command.module, command.record_id, "5001234567")


def running(consumer) -> threading.Thread:
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    return thread


def stop(consumer, thread: threading.Thread) -> None:
    consumer.should_stop = True
    thread.join(timeout=20)
    assert not thread.is_alive()


def test_events_of_one_record_run_in_order_one_at_a_time_while_other_records_proceed(topology, publisher):
    handle = Held()
    first = handle.hold("1001")          # record 1001's first event waits until the others are through
    bodies = [event_body(record_id=record_id) for _ in range(4) for record_id in ("1001", "1002", "1003")]
    for body in bodies:
        send(publisher, topology, body)
    consumer = make_consumer(topology, handle, publisher, MemoryStore(), concurrency=4)
    thread = running(consumer)
    try:
        # While 1001 is held, 1002 and 1003 finish all their events: the records run side by side.
        wait_for(lambda: sum(1 for r, _ in handle.finished if r != "1001") == 8, what="the other records")
        assert [r for r, _ in handle.started].count("1001") == 1       # its later events wait behind it
        first.set()
        wait_for(lambda: len(handle.finished) == 12, what="every event")
        wait_for(lambda: waiting(topology.crm_to_ameise) == 0 and consumer.inflight.busy == 0, what="the acks")
    finally:
        first.set()
        stop(consumer, thread)
    assert handle.overlaps == []
    for record_id in ("1001", "1002", "1003"):
        sent = [b["event_id"] for b in bodies if b["record_id"] == record_id]
        assert [e for r, e in handle.started if r == record_id] == sent     # in the order they came
    assert handle.max_active >= 2


def test_a_message_is_acked_on_the_consumers_thread_only_after_its_handler_finished():
    pool = InFlight(2)
    acks: list[str] = []

    class Message:
        def ack(self):
            acks.append(threading.current_thread().name)

    gate = threading.Event()
    message = pool.wrap(Message())

    def handle():
        assert gate.wait(timeout=20)
        message.ack()

    pool.submit("Contacts/1", handle)
    assert pool.flush() == 0 and acks == []           # running: nothing to settle yet
    gate.set()
    wait_for(lambda: pool.busy == 0, what="the handler")
    assert acks == []                                  # the handler only queued its ack ...
    assert pool.flush() == 1
    assert acks == [threading.current_thread().name]   # ... carried out by the consumer's thread
    pool.shutdown()


def test_acks_of_the_oldest_deliveries_go_as_one_cumulative_ack_never_past_one_not_acked():
    pool = InFlight(8)
    sent: list[tuple] = []
    channel, other = object(), object()

    class Message:
        def __init__(self, tag, on=channel):
            self.delivery_tag, self.channel = tag, on

        def ack(self, multiple=False):
            sent.append(("ack", self.delivery_tag, multiple))

        def requeue(self):
            sent.append(("requeue", self.delivery_tag, False))

    wrapped = {tag: pool.wrap(Message(tag)) for tag in range(1, 8)}
    elsewhere = pool.wrap(Message(1, other))
    for tag in (2, 1, 3, 5):             # 4 still runs: 5 waits for it, 1-3 go as one
        wrapped[tag].ack()
    elsewhere.ack()
    assert pool.flush() == 5
    assert sent == [("ack", 3, True), ("ack", 5, False), ("ack", 1, False)]
    sent.clear()
    wrapped[6].requeue()                  # settled on its own, in the order it came
    wrapped[4].ack()
    wrapped[7].ack()
    assert pool.flush() == 3
    assert sent == [("requeue", 6, False), ("ack", 7, True)]      # 4 (5 and 6 settled already) through 7
    sent.clear()
    late = pool.wrap(Message(8))
    late.ack()
    assert pool.flush() == 1 and sent == [("ack", 8, False)]
    pool.shutdown()


def test_a_failing_handler_does_not_stop_the_records_behind_it():
    pool = InFlight(2)
    ran: list[int] = []

    def fails():
        raise RuntimeError("a bug")

    pool.submit("k", fails)
    pool.submit("k", lambda: ran.append(1))
    wait_for(lambda: pool.busy == 0, what="both")
    assert ran == [1]
    pool.shutdown()


@pytest.mark.parametrize("threads", [0, -1])
def test_a_pool_needs_a_thread(threads):
    with pytest.raises(ValueError):
        InFlight(threads)


def test_the_consumer_takes_enough_messages_to_keep_its_threads_busy(topology, publisher):
    consumer = make_consumer(topology, Held(), publisher, MemoryStore(), prefetch_count=10, concurrency=32)
    assert consumer.prefetch_count == 64 and consumer.inflight.threads == 32
    single = make_consumer(topology, Held(), publisher, MemoryStore(), prefetch_count=10)
    assert single.prefetch_count == 10 and single.inflight is None


def test_a_limited_session_keeps_at_most_its_limit_of_calls_in_flight():
    from werkzeug.wrappers import Response

    from simulators.server import ServerThread
    from syncbridge.adapters.http import LimitedSession

    lock, gate = threading.Lock(), threading.Event()
    active, most = [0], [0]

    def app(environ, start_response):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        assert gate.wait(timeout=20)
        with lock:
            active[0] -= 1
        return Response("ok")(environ, start_response)

    session = LimitedSession(pool=20, limit=3)
    calling: list[int] = []
    with ServerThread(app) as server:
        def call(n):
            calling.append(n)
            assert session.get(server.url, timeout=20).status_code == 200

        threads = [threading.Thread(target=call, args=(n,)) for n in range(12)]
        for thread in threads:
            thread.start()
        wait_for(lambda: len(calling) == 12 and active[0] == 3, what="three calls at the server")
        gate.set()
        for thread in threads:
            thread.join(timeout=20)
    assert most[0] == 3


def test_a_limited_session_takes_the_environments_proxy_as_requests_does(monkeypatch):
    import requests

    from syncbridge.adapters.http import LimitedSession

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "crm.example")
    session, plain = LimitedSession(), requests.Session()
    for url in ("https://api.example/x", "https://crm.example/y", "https://api.example/z"):
        assert session.merge_environment_settings(url, {}, None, None, None) == \
            plain.merge_environment_settings(url, {}, None, None, None)
    assert session.merge_environment_settings("https://api.example/x", {}, None, None, None)["proxies"]["https"] == \
        "http://proxy.example:3128"


def test_acks_gathered_within_the_ack_interval_go_out_together(topology, publisher):
    from consumers import crm_to_ameise

    clock = [100.0]
    consumer = make_consumer(topology, Held(), publisher, MemoryStore(), concurrency=4, clock=lambda: clock[0])
    sent: list[tuple] = []
    channel = object()

    class Message:
        def __init__(self, tag):
            self.delivery_tag, self.channel = tag, channel

        def ack(self, multiple=False):
            sent.append((self.delivery_tag, multiple))

    wrapped = [consumer.inflight.wrap(Message(tag)) for tag in range(1, 5)]
    wrapped[0].ack()
    consumer.on_iteration()
    assert sent == [(1, False)]
    for message in wrapped[1:]:         # finished within the interval: carried out once it has passed
        message.ack()
        clock[0] += crm_to_ameise.ACK_INTERVAL_S / 4
        consumer.on_iteration()
    assert sent == [(1, False)]
    clock[0] += crm_to_ameise.ACK_INTERVAL_S
    consumer.on_iteration()
    assert sent == [(1, False), (4, True)]
    consumer.inflight.shutdown()
