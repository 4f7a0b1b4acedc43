"""Many messages in flight in one consumer: a bounded pool of threads, one record at a time, acks on the consumer's thread.

kombu's channels are not thread-safe, so a handler running in the pool never
acknowledges itself: it gets the message wrapped in :class:`Deferred`, whose
``ack`` / ``reject`` / ``requeue`` are queued and carried out by the consumer's own
thread (:meth:`InFlight.flush`), always after the handler has finished with it.
Messages of one record (one key) run one after another in the order they came,
never at once: the per-record order within a process; across processes the
record's lease (:func:`syncbridge.handlers.crm_to_ameise.record_lock`) keeps it.

Acks that a flush finds queued for every message of a channel from its oldest
unsettled delivery on go as ONE cumulative ack (``multiple``) of the newest of
them: never past a delivery that is still running, waiting, or not acked.  The
others are acked one by one, as they come.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)


class Deferred:
    """A message as a handler in the pool sees it: its settlement waits for the consumer's thread."""

    def __init__(self, message: Any, outbox: queue.SimpleQueue) -> None:
        self._message = message
        self._outbox = outbox

    def ack(self) -> None:
        self._outbox.put((self._message, "ack"))

    def reject(self, requeue: bool = False) -> None:
        self._outbox.put((self._message, "requeue" if requeue else "reject"))

    def requeue(self) -> None:
        self._outbox.put((self._message, "requeue"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._message, name)


class InFlight:
    """Run up to ``threads`` messages at once; those of one key in order, one at a time."""

    def __init__(self, threads: int, name: str = "sync", *, hold: Callable[[], bool] = lambda: False) -> None:
        """``hold``: while it answers true, nothing new starts (the consumer is stopping)."""
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._keys: dict[Hashable, deque[Callable[[], None]]] = {}
        self._pending = 0             # submitted and neither run nor dropped yet
        self._running = 0
        self._holding = False         # stop starting new work (a stop or a lost connection)
        self._hold = hold
        self.outbox: queue.SimpleQueue = queue.SimpleQueue()
        # Per channel, the deliveries wrapped and not settled yet, by delivery tag in the order they came
        # (the consumer's thread alone reads and writes it: wrap, flush, finish).
        self._unsettled: dict[Any, dict[Any, Any]] = {}

    def wrap(self, message: Any) -> Deferred:
        """The message as a handler sees it; on the consumer's thread, in the order the messages came."""
        channel, tag = getattr(message, "channel", None), getattr(message, "delivery_tag", None)
        if channel is not None and isinstance(tag, int):
            self._unsettled.setdefault(channel, {})[tag] = message
        return Deferred(message, self.outbox)

    def submit(self, key: Hashable, run: Callable[[], None]) -> None:
        """Run ``run`` in the pool once every earlier run of ``key`` has finished."""
        with self._lock:
            self._pending += 1
            waiting = self._keys.get(key)
            if waiting is not None:
                waiting.append(run)
                return
            self._keys[key] = deque()
        self._pool.submit(self._work, key, run)

    def _work(self, key: Hashable, run: Callable[[], None]) -> None:
        while True:
            with self._lock:
                if self._holding or self._hold():
                    # Not started: left unacknowledged, it goes back to the queue with the channel.
                    self._pending -= 1 + len(self._keys.get(key, ()))
                    self._keys.pop(key, None)
                    self._idle.notify_all()
                    return
                self._running += 1
            try:
                run()
            except Exception:  # noqa: BLE001 - a handler's own errors are its to settle; never kill the pool
                log.exception("unexpected error in a message handler")
            with self._lock:
                self._running -= 1
                self._pending -= 1
                waiting = self._keys[key]
                if not waiting:
                    del self._keys[key]
                    self._idle.notify_all()
                    return
                run = waiting.popleft()

    @property
    def busy(self) -> int:
        """Messages submitted and not yet finished (running or waiting)."""
        with self._lock:
            return self._pending

    def flush(self, errors: tuple[type[BaseException], ...] = ()) -> int:
        """Carry out the queued acks / rejects on this (the consumer's) thread; return how many."""
        acks: dict[Any, list[Any]] = {}        # channel -> messages to ack, in the order they were queued
        done = 0
        while True:
            try:
                message, action = self.outbox.get_nowait()
            except queue.Empty:
                break
            done += 1
            unsettled = self._unsettled.get(getattr(message, "channel", None))
            if action == "ack" and unsettled is not None and getattr(message, "delivery_tag", None) in unsettled:
                acks.setdefault(message.channel, []).append(message)
                continue
            if unsettled is not None:
                unsettled.pop(getattr(message, "delivery_tag", None), None)
            self._settle(message, action, errors)
        for channel, messages in acks.items():
            unsettled = self._unsettled[channel]
            acked = {message.delivery_tag for message in messages}
            # The oldest unsettled deliveries that are all acked now: one cumulative ack of the newest of them.
            prefix = []
            for tag in unsettled:
                if tag not in acked:
                    break
                prefix.append(tag)
            for tag in prefix:
                del unsettled[tag]
            if len(prefix) > 1:
                newest = prefix[-1]
                covered = set(prefix)
                self._settle(next(m for m in messages if m.delivery_tag == newest), "ack", errors, multiple=True)
                messages = [m for m in messages if m.delivery_tag not in covered]
            for message in messages:
                unsettled.pop(message.delivery_tag, None)
                self._settle(message, "ack", errors)
        return done

    @staticmethod
    def _settle(message: Any, action: str, errors: tuple[type[BaseException], ...], *, multiple: bool = False) -> None:
        try:
            if action == "ack":
                if multiple:
                    message.ack(multiple=True)
                else:
                    message.ack()
            elif action == "requeue":
                message.requeue()
            else:
                message.reject()
        except errors as exc:
            # The channel it came on is gone: the broker gives the message again, and the
            # handler's idempotency (the processed events) makes the repeat a no-op.
            log.warning("could not settle a message on a closed channel (%s); it will be delivered again", exc)
        except Exception as exc:  # noqa: BLE001 - e.g. kombu's MessageStateError after a reconnect
            log.warning("could not settle a message (%s: %s); it will be delivered again", type(exc).__name__, exc)

    def finish(self, flush_errors: tuple[type[BaseException], ...] = (), *, hold: bool = True) -> None:
        """Wait for what is running (what waits is not started when ``hold``), then settle it all."""
        with self._lock:
            self._holding = hold
            while self._running if hold else self._pending:
                self._idle.wait(0.1)
        self.flush(flush_errors)
        # What is left unsettled was not started: it goes back to the queue with its channel, never acked here.
        self._unsettled.clear()

    def resume(self) -> None:
        with self._lock:
            self._holding = False

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
