"""Writes of one kind that arrive while such a write is in flight go out together, as the next call.

A worker syncing many records at once writes each record's Ameise number back to the CRM on a
thread of its own, one record per call.  Zoho takes up to 100 records per update and charges one
credit per ten, so while one write-back is on its way the ones that arrive meanwhile wait for it
and then leave as one call (a group commit).  A lone write goes out at once:
nothing waits for company, a call only gathers what queued up behind the one before it.

Each caller gets the results of its own items, in order, or the error of the call that carried
them.  Two writes of one record never share a call (the later one goes in the call after), so
every call says one thing about each record it carries.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Waiter(Generic[Item, Result]):
    __slots__ = ("items", "ids", "woken", "lead", "results", "error")

    def __init__(self, items: list[Item], ids: set[Hashable]) -> None:
        self.items = items
        self.ids = ids
        self.woken = threading.Event()
        self.lead = False                      # woken to send the next call (not with results)
        self.results: list[Result] | None = None
        self.error: BaseException | None = None


class _Line(Generic[Item, Result]):
    """The writes of one key: whether a call is in flight, and who waits for the next one."""
    __slots__ = ("busy", "waiting")

    def __init__(self) -> None:
        self.busy = False
        self.waiting: deque[_Waiter[Item, Result]] = deque()


class GroupedWrites(Generic[Item, Result]):
    """At most one call per key in flight; what arrives meanwhile goes together in the next one.

    ``send(key, items)`` makes one call and answers one result per item, in order.  ``limit``: the
    most items one call carries; ``identity(item)``: the record an item writes, so that two writes
    of one record never share a call.
    """

    def __init__(self, send: Callable[[Hashable, list[Item]], Sequence[Result]], *, limit: int,
                 identity: Callable[[Item], Hashable]) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._send = send
        self.limit = limit
        self._identity = identity
        self._lock = threading.Lock()
        self._lines: dict[Hashable, _Line[Item, Result]] = {}

    def waiting(self, key: Hashable) -> int:
        """The writes of ``key`` waiting for a call (not those in the call in flight)."""
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
            if not line.busy:
                line.busy = True
                waiter.lead = True
        while True:
            if not waiter.lead:
                waiter.woken.wait()
                waiter.woken.clear()
            if waiter.lead:
                waiter.lead = False
                self._lead(key, line)
            if waiter.error is not None:
                raise waiter.error
            if waiter.results is not None:
                return waiter.results

    def _lead(self, key: Hashable, line: _Line[Item, Result]) -> None:
        """Send what waits (this caller's items first), hand each its results, pass the turn on."""
        with self._lock:
            batch = self._take(line)
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
                following = line.waiting[0] if line.waiting else None
                if following is None:
                    line.busy = False
                    if self._lines.get(key) is line:
                        del self._lines[key]
                else:
                    following.lead = True
            for waiter in batch:
                waiter.woken.set()
            if following is not None:
                following.woken.set()

    def _take(self, line: _Line[Item, Result]) -> list[_Waiter[Item, Result]]:
        """The waiters of the next call, in their order: up to ``limit`` items, no record twice.

        A waiter left out holds back every later write of its records, so that the writes of one
        record leave in the order they came."""
        batch: list[_Waiter[Item, Result]] = []
        count, ids, held = 0, set(), set()
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
