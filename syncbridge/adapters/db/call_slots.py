"""A concurrency limit shared by every process on one PostgreSQL database: slots held as advisory locks.

Zoho CRM allows a fixed number of API calls in flight per org and app
(https://www.zoho.com/crm/developer/docs/api/v7/api-limits.html); beyond it a call answers
429.  :class:`CallSlots` is a semaphore whose ``limit`` slots are shared by every process that
uses the same database and name:

- a slot is the session-level advisory lock ``(classid, slot)`` (slot 0 .. limit-1), held on
  one dedicated connection of the process; a process that dies frees its slots with its
  connection;
- each process also holds the advisory lock ``(members classid, its backend pid)``, so
  ``pg_locks`` lists the live members, and ``(busy classid, its backend pid)`` while it is busy
  (it made a call since its last rebalance or has one in flight);
- a process's share: while some members are busy and there are no more members than slots,
  an idle member keeps 1 slot (its next call need not wait) and the busy ones split the rest;
  otherwise every member gets ``limit // members``; a remainder goes one each by rank among
  the pids sharing it (the shares sum to ``limit``), so one sync worker with work does not
  wait on the share of another that has none;
- every ``rebalance_every`` seconds the process takes free slots up to its share (try-locks)
  and gives back those above it that no call uses; a call uses a slot held locally, so a call
  costs no database round trip;
- in between, once a second, it looks whether a process joined or left (one read of
  ``pg_locks``), and rebalances at once if so, or while a call of its own waits for a slot
  its share allows: a process that starts beside others has its first slot within about two
  seconds, not after the others' next rebalance.

A lost connection holds no slots; the next rebalance connects anew.  A call that gets no slot
within ``timeout`` fails with :class:`CallSlotTimeout`, a ``requests.ConnectionError``: the
HTTP clients treat it as the remote side being unavailable, so the work is retried later.
"""
from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

import requests
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from syncbridge.adapters.db.sql import POSTGRES_CONNECT_TIMEOUT_S

log = logging.getLogger(__name__)

REBALANCE_EVERY_S = 5.0
WAIT_TIMEOUT_S = 60.0

_MEMBERS = text("""
    SELECT objid::bigint FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid::bigint = :classid
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
    ORDER BY objid::bigint""")
_TAKEN = text("""
    SELECT objid::bigint FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid::bigint = :classid
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())""")


class CallSlotTimeout(requests.ConnectionError):
    """No call slot came free in time: the remote side is as good as unavailable, try again later."""


def lock_class(name: str) -> int:
    """A stable advisory-lock class id (a positive int4) for ``name``."""
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


class CallSlots:
    """A semaphore of ``limit`` slots shared by the processes on one database (see the module's docstring).

    Use it as a context manager (``with slots:``) or by :meth:`acquire` / :meth:`release`.
    ``connect`` opens a new database connection (one a process keeps for its locks);
    ``name`` tells apart the limits sharing a database (e.g. ``zoho-calls:<namespace>``);
    ``on_close`` is called last by :meth:`close`.
    """

    def __init__(self, connect: Callable[[], Connection], limit: int, *, name: str = "zoho-calls",
                 timeout: float = WAIT_TIMEOUT_S, rebalance_every: float = REBALANCE_EVERY_S,
                 clock: Callable[[], float] = time.monotonic, on_close: Callable[[], None] | None = None) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.name = name
        self.timeout = timeout
        self.rebalance_every = rebalance_every
        self.classid = lock_class(name)
        self.members_classid = lock_class(name + ":members")
        self.busy_classid = lock_class(name + ":busy")
        self._connect = connect
        self._on_close = on_close
        self._clock = clock
        self._conn: Connection | None = None
        self._pid: int | None = None
        self._db = threading.Lock()             # one thread at a time on the connection
        self._state = threading.Condition()     # the slots below
        self._held: set[int] = set()            # locked on our connection
        # calls holding a slot now; which slot does not matter (the database sees only how many are
        # held), and calls still in flight when the connection was lost keep counting until they end
        self._in_use = 0
        self._calls = 0                         # calls that took a slot since the last rebalance
        self._marked_busy = False               # the busy lock held on the connection
        self._share = 0
        self._members = 0
        self._member_pids: list[int] = []      # as of the last rebalance
        self._waiting = 0                       # calls waiting for a slot now
        self._warned = False
        self._due = float("-inf")
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_engine(cls, engine: Engine, limit: int, **options: Any) -> CallSlots:
        """Slots on a connection of their own to ``engine``'s database (not one of its pool)."""
        url = engine.url
        # a server that does not answer fails the connection after a bounded time, and a connection
        # whose peer is gone is noticed by TCP keepalives, not only when a statement hangs
        connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}
        connect_args.update({"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3})
        own = create_engine(url, poolclass=NullPool, connect_args=connect_args)
        return cls(own.connect, limit, on_close=own.dispose, **options)

    # ---------------------------------------------------------------- what calls use
    @property
    def held(self) -> int:
        """Slots this process holds now."""
        with self._state:
            return len(self._held)

    @property
    def share(self) -> int:
        """The slots this process may hold, as of the last rebalance."""
        with self._state:
            return self._share

    @property
    def members(self) -> int:
        """The processes sharing the limit, as of the last rebalance."""
        with self._state:
            return self._members

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take a slot held by this process; wait up to ``timeout`` (default: :attr:`timeout`) for one."""
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        with self._state:
            while True:
                if self._in_use < min(self._share, len(self._held)):
                    self._in_use += 1
                    self._calls += 1
                    return True
                left = deadline - time.monotonic()
                if not blocking or left <= 0:
                    return False
                self._waiting += 1
                try:
                    self._state.wait(left)
                finally:
                    self._waiting -= 1

    def release(self) -> None:
        """Give back the slot a call used; a slot above this process's share goes back to the database."""
        give_back = None
        with self._state:
            if self._in_use <= 0:
                raise ValueError("release() without acquire()")
            self._in_use -= 1
            if len(self._held) > max(self._share, self._in_use):
                give_back = max(self._held)
                self._held.discard(give_back)
            self._state.notify()
        if give_back is not None:
            self._unlock([give_back])

    def __enter__(self) -> CallSlots:
        if not self.acquire():
            raise CallSlotTimeout(f"no {self.name} slot came free within {self.timeout:g} s "
                                  f"(this process's share: {self.share} of {self.limit})")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # ---------------------------------------------------------------- the database side
    def start(self) -> CallSlots:
        """Rebalance now and then every :attr:`rebalance_every` seconds in a background thread."""
        self.rebalance()
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-slots", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._closed.wait(min(1.0, self.rebalance_every)):
            if not self.rebalance_if_due():
                self.rebalance_if_changed()

    def rebalance_if_due(self) -> bool:
        """:meth:`rebalance` when :attr:`rebalance_every` has passed on the clock since the last one."""
        if self._clock() < self._due:
            return False
        self.rebalance()
        return True

    def rebalance_if_changed(self) -> bool:
        """:meth:`rebalance` before it is due when a call waits for a slot the share allows, or processes came or went.

        The second costs one read of ``pg_locks``; without a connection nothing is read (the
        rebalance when due connects anew).
        """
        with self._state:
            starved = self._waiting > 0 and len(self._held) < self._share
            known = list(self._member_pids)
        if not starved:
            with self._db:
                conn = self._conn
                if conn is None or self._closed.is_set():
                    return False
                try:
                    members = list(conn.execute(_MEMBERS, {"classid": self.members_classid}).scalars())
                except SQLAlchemyError:
                    return False        # the rebalance when due finds the connection lost and says so
            if members == known:
                return False
        self.rebalance()
        return True

    def rebalance(self) -> None:
        """Join (connecting if need be), take free slots up to the share, give back unused ones above it."""
        with self._db:
            self._due = self._clock() + self.rebalance_every
            if self._closed.is_set():
                return
            try:
                self._rebalance()
            except SQLAlchemyError as exc:
                log.warning("%s slots: lost the database connection (%s); holding none until it is back",
                            self.name, type(exc).__name__)
                self._drop()

    def _rebalance(self) -> None:
        conn = self._conn
        if conn is None:
            conn = self._conn = self._connect().execution_options(isolation_level="AUTOCOMMIT")
            self._pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            conn.execute(text("SELECT pg_advisory_lock(:c, :p)"), {"c": self.members_classid, "p": self._pid})
            self._marked_busy = False
        with self._state:
            busy, self._calls = self._calls > 0 or self._in_use > 0, 0
        if busy != self._marked_busy:
            change = "pg_advisory_lock" if busy else "pg_advisory_unlock"
            conn.execute(text(f"SELECT {change}(:c, :p)"), {"c": self.busy_classid, "p": self._pid})
            self._marked_busy = busy
        members = list(conn.execute(_MEMBERS, {"classid": self.members_classid}).scalars())
        busy_members = set(conn.execute(_TAKEN, {"classid": self.busy_classid}).scalars()) & set(members)
        share = _share(self.limit, members, busy_members, self._pid)
        count = max(1, len(members))
        with self._state:
            self._share, self._members, self._member_pids = share, count, members
            # slots above the share that no call uses
            surplus = sorted(self._held, reverse=True)[:max(0, len(self._held) - max(share, self._in_use))]
            self._held.difference_update(surplus)
            wanted = share - len(self._held)
            mine = set(self._held)
        if share == 0 and not self._warned:
            self._warned = True
            log.warning("%s: %d processes share a limit of %d calls: this one gets no slot and waits "
                        "until another leaves (run at most %d processes)", self.name, count, self.limit, self.limit)
        if surplus:
            self._unlock(surplus, locked=True)
        taken: list[int] = []
        if wanted > 0:
            others = set(conn.execute(_TAKEN, {"classid": self.classid}).scalars()) - mine
            for slot in range(self.limit):
                if len(taken) >= wanted:
                    break
                if slot in mine or slot in others:
                    continue
                if conn.execute(text("SELECT pg_try_advisory_lock(:c, :s)"),
                                {"c": self.classid, "s": slot}).scalar_one():
                    taken.append(slot)
        if taken:
            with self._state:
                self._held.update(taken)
                self._state.notify_all()

    def _unlock(self, slots: list[int], *, locked: bool = False) -> None:
        """Give ``slots`` back to the database (``locked``: the caller holds the connection's lock)."""
        if not locked:
            with self._db:
                self._unlock(slots, locked=True)
            return
        conn = self._conn
        if conn is None:
            return
        try:
            for slot in slots:
                conn.execute(text("SELECT pg_advisory_unlock(:c, :s)"), {"c": self.classid, "s": slot})
        except SQLAlchemyError as exc:
            log.warning("%s slots: lost the database connection (%s)", self.name, type(exc).__name__)
            self._drop()

    def _drop(self) -> None:
        """Forget the connection and every slot (the database freed them with the connection)."""
        conn, self._conn, self._pid, self._marked_busy = self._conn, None, None, False
        with self._state:
            self._held.clear()
            self._share = 0
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except SQLAlchemyError:
                log.debug("closing a lost connection failed", exc_info=True)

    def close(self) -> None:
        """Stop rebalancing and give back every slot and the membership (by closing the connection)."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._db:
            conn, self._conn, self._pid, self._marked_busy = self._conn, None, None, False
            with self._state:
                self._held.clear()
                self._share = 0
                self._state.notify_all()
            if conn is not None:
                try:
                    conn.close()    # the session ends: PostgreSQL releases its advisory locks
                except SQLAlchemyError:
                    log.debug("closing the slots' connection failed", exc_info=True)
        if self._on_close is not None:
            self._on_close()


def _share(limit: int, members: list[int], busy: set[int], pid: int | None) -> int:
    """The slots the member ``pid`` may hold of ``limit``, with ``members`` (in rank order) of which ``busy`` are busy.

    While some members are busy and no member need go without, an idle member keeps one slot
    and the busy ones split the rest; else all split the limit.  A remainder goes one each
    by rank among those splitting it.
    """
    if pid not in members:
        members = [*members, pid] if pid is not None else members
    if busy and len(members) <= limit:
        idle = len(members) - len(busy)
        if pid not in busy:
            return 1
        sharing, rest = [m for m in members if m in busy], limit - idle
    else:
        sharing, rest = members, limit
    count = max(1, len(sharing))
    rank = sharing.index(pid) if pid in sharing else len(sharing)
    return rest // count + (1 if rank < rest % count else 0)
