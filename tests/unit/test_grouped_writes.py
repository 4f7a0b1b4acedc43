"""Writes that come while one of their kind is in flight go out together as the next call."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from syncbridge.adapters.grouped import GroupedWrites
from tests.support.clock import FakeClock
from tests.support.waiting import wait_for


class Remote:
    """A remote end that answers each item with ``<key>:<id>:<value>``; a call can be held until released."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[dict]]] = []
        self.hold = threading.Event()        # set: the next call waits for `release`
        self.held = threading.Event()        # set by a call that waits
        self.release = threading.Event()
        self.fail: BaseException | None = None
        self.fail_calls: set[int] = set()    # the calls (counted from 1) that fail with `fail`
        self.short = False                   # answer one result too few

    def send(self, key, items):
        self.calls.append((key, [dict(item) for item in items]))
        if self.hold.is_set():
            self.hold.clear()
            self.held.set()
            assert self.release.wait(10)
        if self.fail is not None and (not self.fail_calls or len(self.calls) in self.fail_calls):
            raise self.fail
        answers = [f"{key}:{item['id']}:{item['value']}" for item in items]
        return answers[:-1] if self.short else answers


def item(record: str, value: int = 0) -> dict:
    return {"id": record, "value": value}


@pytest.fixture
def remote() -> Remote:
    return Remote()


@pytest.fixture
def line(remote) -> GroupedWrites:
    return GroupedWrites(remote.send, limit=10, identity=lambda it: it["id"])


def hold_first_call(remote: Remote, line: GroupedWrites, pool: ThreadPoolExecutor, key: str = "Contacts"):
    """Start a write of record ``r0`` and keep its call in flight; its future."""
    remote.hold.set()
    first = pool.submit(line, key, [item("r0")])
    assert remote.held.wait(10)
    return first


def queue_behind(line: GroupedWrites, pool: ThreadPoolExecutor, write: dict, waiting: int):
    """Start ``write`` and wait until it is one of ``waiting`` writes queued behind the call in flight."""
    future = pool.submit(line, "Contacts", [write])
    wait_for(lambda: line.waiting("Contacts") == waiting, timeout=10, what=f"{waiting} writes waiting")
    return future


def test_a_lone_write_goes_out_at_once_with_its_results_in_order(line, remote):
    assert line("Contacts", [item("a", 1), item("b", 2)]) == ["Contacts:a:1", "Contacts:b:2"]
    assert line("Contacts", [item("c", 3)]) == ["Contacts:c:3"]
    assert remote.calls == [("Contacts", [item("a", 1), item("b", 2)]), ("Contacts", [item("c", 3)])]
    assert line("Contacts", []) == [] and len(remote.calls) == 2
    assert line.waiting("Contacts") == 0


def test_writes_that_come_while_one_is_in_flight_leave_together_as_the_next_call(line, remote):
    with ThreadPoolExecutor(8) as pool:
        first = hold_first_call(remote, line, pool)
        later = [pool.submit(line, "Contacts", [item(f"r{n}", n)]) for n in range(1, 6)]
        wait_for(lambda: line.waiting("Contacts") == 5, timeout=10, what="five writes waiting")
        remote.release.set()
        assert first.result(10) == ["Contacts:r0:0"]
        assert [future.result(10) for future in later] == [[f"Contacts:r{n}:{n}"] for n in range(1, 6)]
    assert [len(items) for _, items in remote.calls] == [1, 5]
    assert sorted(it["id"] for it in remote.calls[1][1]) == ["r1", "r2", "r3", "r4", "r5"]


def test_keys_do_not_wait_for_one_another(line, remote):
    with ThreadPoolExecutor(4) as pool:
        first = hold_first_call(remote, line, pool, key="Contacts")
        assert line("Accounts", [item("x", 7)]) == ["Accounts:x:7"]     # not held behind the Contacts call
        remote.release.set()
        assert first.result(10) == ["Contacts:r0:0"]


def test_a_call_carries_at_most_limit_items(line, remote):
    with ThreadPoolExecutor(16) as pool:
        first = hold_first_call(remote, line, pool)
        later = [pool.submit(line, "Contacts", [item(f"r{n}a", n), item(f"r{n}b", n)]) for n in range(1, 9)]
        wait_for(lambda: line.waiting("Contacts") == 8, timeout=10, what="eight writes waiting")
        remote.release.set()
        assert first.result(10) == ["Contacts:r0:0"]
        for n, future in enumerate(later, start=1):
            assert future.result(10) == [f"Contacts:r{n}a:{n}", f"Contacts:r{n}b:{n}"]
    sizes = [len(items) for _, items in remote.calls]
    assert sizes[0] == 1 and sum(sizes) == 17 and max(sizes) <= 10 and len(sizes) == 3
    with pytest.raises(ValueError, match="at most 10"):
        line("Contacts", [item(f"x{n}") for n in range(11)])


def test_two_writes_of_one_record_never_share_a_call_and_leave_in_their_order(line, remote):
    with ThreadPoolExecutor(8) as pool:
        first = hold_first_call(remote, line, pool)
        one = queue_behind(line, pool, item("r1", 1), waiting=1)
        two = queue_behind(line, pool, item("r1", 2), waiting=2)
        other = queue_behind(line, pool, item("r2", 3), waiting=3)
        remote.release.set()
        assert (first.result(10), one.result(10), two.result(10), other.result(10)) == (
            ["Contacts:r0:0"], ["Contacts:r1:1"], ["Contacts:r1:2"], ["Contacts:r2:3"])
    values_of_r1 = [it["value"] for _, items in remote.calls for it in items if it["id"] == "r1"]
    assert values_of_r1 == [1, 2]
    assert all(len({it["id"] for it in items}) == len(items) for _, items in remote.calls)
    assert [[it["id"] for it in items] for _, items in remote.calls] == [["r0"], ["r1", "r2"], ["r1"]]


def test_every_write_of_a_failed_call_gets_its_error_and_the_next_call_goes_out(line, remote):
    with ThreadPoolExecutor(8) as pool:
        first = hold_first_call(remote, line, pool)
        later = [pool.submit(line, "Contacts", [item(f"r{n}", n)]) for n in range(1, 4)]
        wait_for(lambda: line.waiting("Contacts") == 3, timeout=10, what="three writes waiting")
        remote.fail = ConnectionError("Zoho is away")
        remote.release.set()
        for future in [first, *later]:
            with pytest.raises(ConnectionError, match="Zoho is away"):
                future.result(10)
    remote.fail = None
    assert line("Contacts", [item("r9", 9)]) == ["Contacts:r9:9"]
    assert line.waiting("Contacts") == 0


def test_a_failed_call_hands_the_turn_to_the_writes_it_did_not_carry(line, remote):
    """The second write of r1 waits behind the call carrying the first; that call fails, the next still goes."""
    with ThreadPoolExecutor(8) as pool:
        first = hold_first_call(remote, line, pool)
        one = queue_behind(line, pool, item("r1", 1), waiting=1)
        two = queue_behind(line, pool, item("r1", 2), waiting=2)
        remote.fail, remote.fail_calls = KeyboardInterrupt(), {2}
        remote.release.set()
        assert first.result(10) == ["Contacts:r0:0"]
        with pytest.raises(KeyboardInterrupt):
            one.result(10)
        assert two.result(10) == ["Contacts:r1:2"]
    assert [[it["value"] for it in items] for _, items in remote.calls] == [[0], [1], [2]]
    assert line.waiting("Contacts") == 0


def stalling_line(remote: Remote, stall_after: float) -> tuple[GroupedWrites, FakeClock]:
    """A line whose calls count as stalled after ``stall_after`` seconds of a clock the test moves."""
    clock = FakeClock()
    return GroupedWrites(remote.send, limit=10, identity=lambda it: it["id"], stall_after=stall_after,
                         clock=clock.seconds), clock


def test_a_call_that_hangs_holds_up_the_writes_behind_it_only_until_it_counts_as_stalled(remote):
    line, clock = stalling_line(remote, stall_after=5.0)
    with ThreadPoolExecutor(8) as pool:
        first = hold_first_call(remote, line, pool)
        one = queue_behind(line, pool, item("r1", 1), waiting=1)
        clock.advance(4.9)
        two = queue_behind(line, pool, item("r2", 2), waiting=2)
        clock.advance(0.1)              # the call in flight has now been on its way 5 s
        three = pool.submit(line, "Contacts", [item("r3", 3)])
        assert (one.result(10), two.result(10), three.result(10)) == (
            ["Contacts:r1:1"], ["Contacts:r2:2"], ["Contacts:r3:3"])
        assert not first.done()         # beside the call that still hangs
        remote.release.set()
        assert first.result(10) == ["Contacts:r0:0"]
    assert [[it["id"] for it in items] for _, items in remote.calls] == [["r0"], ["r1", "r2", "r3"]]


def test_writes_waiting_behind_a_stalled_call_leave_by_themselves(remote):
    line, clock = stalling_line(remote, stall_after=0.05)
    with ThreadPoolExecutor(8) as pool:
        first = hold_first_call(remote, line, pool)
        one = queue_behind(line, pool, item("r1", 1), waiting=1)
        assert not one.done()
        clock.advance(0.06)             # nothing new arrives: r1 looks again after waiting stall_after itself
        assert one.result(10) == ["Contacts:r1:1"]
        assert not first.done()
        remote.release.set()
        assert first.result(10) == ["Contacts:r0:0"]


def test_a_write_of_a_record_in_a_stalled_call_still_waits_for_that_call(remote):
    line, clock = stalling_line(remote, stall_after=5.0)
    with ThreadPoolExecutor(8) as pool:
        first = hold_first_call(remote, line, pool)          # carries r0
        again = queue_behind(line, pool, item("r0", 7), waiting=1)
        clock.advance(5.0)
        other = pool.submit(line, "Contacts", [item("r5", 5)])
        assert other.result(10) == ["Contacts:r5:5"]          # left beside the stalled call ...
        assert not again.done() and line.waiting("Contacts") == 1   # ... r0's second write did not
        remote.release.set()
        assert first.result(10) == ["Contacts:r0:0"]
        assert again.result(10) == ["Contacts:r0:7"]
    assert [[it["value"] for it in items] for _, items in remote.calls] == [[0], [5], [7]]


def test_an_answer_of_the_wrong_length_fails_the_call_for_every_write_in_it(line, remote):
    remote.short = True
    with pytest.raises(RuntimeError, match="2 items answered 1 results"):
        line("Contacts", [item("a"), item("b")])
    remote.short = False
    assert line("Contacts", [item("a")]) == ["Contacts:a:0"]


def test_many_threads_writing_at_once_each_get_exactly_their_own_results(remote):
    line = GroupedWrites(remote.send, limit=100, identity=lambda it: it["id"])
    records = [f"r{n}" for n in range(400)]
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda record: line("Contacts", [item(record, int(record[1:]))]), records))
    assert answers == [[f"Contacts:{record}:{record[1:]}"] for record in records]
    written = [it["id"] for _, items in remote.calls for it in items]
    assert sorted(written) == sorted(records)           # each write exactly once
    assert all(len(items) <= 100 for _, items in remote.calls)
    assert line.waiting("Contacts") == 0
