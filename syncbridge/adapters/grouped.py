"""Writes of one kind that arrive while such a write is in flight go out together, as the next call.

A worker syncing many records at once writes each record's Ameise number back to the CRM on a
thread of its own, one record per call.  Zoho takes up to 100 records per update and charges one
credit per ten, so while one write-back is on its way the ones that arrive meanwhile wait for it
and then leave as one call (a group commit).  A lone write goes out at once:
nothing waits for company, a call only gathers what queued up behind the one before it.

Each caller gets the results of its own items, in order, or the error of the call that carried
them.  Two writes of one record never share a call, and the later one leaves only once the call
carrying the earlier one has answered, so the writes of a record keep their order.

A call that hangs must not hold up every write behind it until its timeout: once the newest call
in flight has been on its way ``stall_after`` seconds, the writes waiting leave in a call of
their own beside it.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# Seconds the newest call in flight may take before the writes waiting behind it go in a call beside
# it: well above an ordinary Zoho call (100-500 ms), well below a timeout.
STALL_AFTER_S = 2.0


class _Waiter(Generic[Item, Result]):
    __slots__ = ("items", "ids", "woken", "batch", "started", "results", "error")

    def __init__(self, items: list[Item], ids: set[Hashable]) -> None:
        self.items = items
        self.ids = ids
        self.woken = threading.Event()
        self.batch: list[_Waiter[Item, Result]] | None = None    # the call this one is to send
        self.started = 0.0                                        # ... formed at this time
        self.results: list[Result] | None = None
        self.error: BaseException | None = None


class _Line(Generic[Item, Result]):
    """The writes of one key: the calls in flight and the records they carry, who waits for the next."""
    __slots__ = ("flying", "carried", "waiting")

    def __init__(self) -> None:
        self.flying: list[float] = []           # when each call in flight left (the clock's seconds)
        self.carried: Counter[Hashable] = Counter()      # the records of the calls in flight
        self.waiting: deque[_Waiter[Item, Result]] = deque()


class GroupedWrites(Generic[Item, Result]):
    """One call per key in flight; what arrives meanwhile goes together in the next one.

    ``send(key, items)`` makes one call and answers one result per item, in order.  ``limit``: the
    most items one call carries; ``identity(item)``: the record an item writes, so that two writes
    of one record never share a call nor overtake each other.  ``stall_after``: seconds after which
    a call in flight no longer holds back the writes waiting behind it; ``clock``: monotonic seconds.
    """

    def __init__(self, send: Callable[[Hashable, list[Item]], Sequence[Result]], *, limit: int,
                 identity: Callable[[Item], Hashable], stall_after: float = STALL_AFTER_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._send = send
        self.limit = limit
        self._identity = identity
        self.stall_after = stall_after
        self._clock = clock
        self._lock = threading.Lock()
        self._lines: dict[Hashable, _Line[Item, Result]] = {}

    def waiting(self, key: Hashable) -> int:
        """The writes of ``key`` waiting for a call (not those in a call in flight)."""
        with self._lock:
            line = self._lines.get(key)
            return len(line.waiting) if line is not None else 0

    def __call__(self, key: Hashable, items: Sequence[Item]) -> list[Result]:
        """Write ``items`` (at most ``limit``) in a call of ``key``; their results, in order."""
        items = list(items)
        if len(items) > self.limit:
            raise ValueError(f"at most {self.limit} items per call, got {len(items)}")
        if not items:
            return []
        waiter: _Waiter[Item, Result] = _Waiter(items, {self._identity(item) for item in items})
        with self._lock:
            line = self._lines.get(key)
            if line is None:
                line = self._lines[key] = _Line()
            line.waiting.append(waiter)
            self._dispatch(line)
        while True:
            if waiter.batch is not None:
                batch, waiter.batch = waiter.batch, None
                self._lead(key, line, batch, waiter.started)
            if waiter.error is not None:
                raise waiter.error
            if waiter.results is not None:
                return waiter.results
            if not waiter.woken.wait(self.stall_after):
                with self._lock:            # the call ahead may have stalled: leave beside it
                    self._dispatch(line)
            waiter.woken.clear()

    def _dispatch(self, line: _Line[Item, Result]) -> None:
        """With the lock held: when no call is in flight, or the newest has stalled, form the next
        call of what waits and hand it to its first writer, who sends it."""
        now = self._clock()
        if not line.waiting or (line.flying and now - max(line.flying) < self.stall_after):
            return
        batch = self._take(line)
        if not batch:
            return
        line.flying.append(now)
        for waiter in batch:
            line.carried.update(waiter.ids)
        batch[0].batch, batch[0].started = batch, now
        batch[0].woken.set()

    def _lead(self, key: Hashable, line: _Line[Item, Result], batch: list[_Waiter[Item, Result]],
              started: float) -> None:
        """Send ``batch`` as one call, hand each writer its results, and let the next call form."""
        items = [item for waiter in batch for item in waiter.items]
        try:
            results = list(self._send(key, items))
            if len(results) != len(items):
                raise RuntimeError(f"a call of {len(items)} items answered {len(results)} results")
            start = 0
            for waiter in batch:
                waiter.results = results[start:start + len(waiter.items)]
                start += len(waiter.items)
        except BaseException as exc:  # noqa: BLE001 - every caller of the call gets its error, then it goes on
            for waiter in batch:
                waiter.results, waiter.error = None, exc
        finally:
            with self._lock:
                line.flying.remove(started)
                for waiter in batch:
                    line.carried.subtract(waiter.ids)
                line.carried = +line.carried
                self._dispatch(line)
                if not line.flying and not line.waiting and self._lines.get(key) is line:
                    del self._lines[key]
            for waiter in batch:
                waiter.woken.set()

    def _take(self, line: _Line[Item, Result]) -> list[_Waiter[Item, Result]]:
        """The waiters of the next call, in their order: up to ``limit`` items, no record twice, none
        whose record is in a call in flight.

        A waiter left out holds back every later write of its records, so that the writes of one
        record leave in the order they came."""
        batch: list[_Waiter[Item, Result]] = []
        count, ids, held = 0, set(), set(line.carried)
        kept: deque[_Waiter[Item, Result]] = deque()
        while line.waiting:
            waiter = line.waiting.popleft()
            if count + len(waiter.items) <= self.limit and not (waiter.ids & ids) and not (waiter.ids & held):
                batch.append(waiter)
                count += len(waiter.items)
                ids |= waiter.ids
            else:
                kept.append(waiter)
                held |= waiter.ids
        line.waiting = kept
        return batch
