"""The dead-letter archive in memory, with the semantics of ``SqlDeadLetterStore``.

One archived row per fingerprint, newest first, filters on queue, kind, record,
state, cause, free text and time (timezone-aware only); :meth:`MemoryDeadLetterStore.change` locks
one letter and keeps its changes only when the block ends without an error.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from syncbridge.ports import DEAD, DISCARDED, REPLAYED, DeadLetter, DeadLetterFilter, dead_letter_kind_names


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
    return value.astimezone(UTC)


def _matches(letter: DeadLetter, flt: DeadLetterFilter) -> bool:
    for name in ("queue", "record", "state", "cause"):
        value = getattr(flt, name)
        if value is not None and getattr(letter, name) != value:
            return False
    if flt.kind is not None and letter.kind not in dead_letter_kind_names(flt.kind):
        return False
    if flt.text is not None and not any(flt.text.lower() in (value or "").lower() for value in (
            letter.reason, letter.record, letter.routing_key, letter.message_id)):
        return False
    if flt.since is not None and letter.dead_lettered_at < _as_utc(flt.since):
        return False
    return not (flt.until is not None and letter.dead_lettered_at >= _as_utc(flt.until))


class MemoryDeadLetterStore:
    """Dead letters in a dict by id; ``now`` gives the time of archiving, replays and discards."""

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.now = now
        self.letters: dict[int, DeadLetter] = {}
        self._lock = threading.Lock()
        self._row_locks: dict[int, threading.Lock] = {}

    def archive(self, letter: DeadLetter) -> int:
        with self._lock:
            for stored in self.letters.values():
                if stored.fingerprint == letter.fingerprint:
                    return stored.id  # type: ignore[return-value]
            letter_id = max(self.letters, default=0) + 1
            self.letters[letter_id] = replace(
                letter, id=letter_id, state=DEAD, replays=0, replayed_by=None, replayed_at=None, replay_error=None,
                discarded_by=None, discarded_at=None, note=None, corrected_body=None, corrected_by=None,
                corrected_at=None, headers=dict(letter.headers), body=bytes(letter.body),
                dead_lettered_at=_as_utc(letter.dead_lettered_at),
                archived_at=self.now() if letter.archived_at is None else letter.archived_at)
            self._row_locks[letter_id] = threading.Lock()
            return letter_id

    def get(self, letter_id: int) -> DeadLetter | None:
        return self.letters.get(letter_id)

    def find(self, flt: DeadLetterFilter = DeadLetterFilter(), *, limit: int = 100) -> list[DeadLetter]:
        if limit < 0:
            raise ValueError("limit must not be negative")
        found = [letter for letter in self.letters.values() if _matches(letter, flt)]
        found.sort(key=lambda letter: (letter.dead_lettered_at, letter.id), reverse=True)
        return found[:limit]

    def count(self, flt: DeadLetterFilter = DeadLetterFilter()) -> int:
        return sum(1 for letter in self.letters.values() if _matches(letter, flt))

    def ids(self, flt: DeadLetterFilter, *, after: int = 0, limit: int = 500) -> list[int]:
        return sorted(i for i, letter in self.letters.items() if i > after and _matches(letter, flt))[:limit]

    @contextmanager
    def change(self, letter_id: int) -> Iterator[MemoryLetterChange | None]:
        lock = self._row_locks.get(letter_id)
        if lock is None:
            yield None
            return
        with lock:
            change = MemoryLetterChange(self.letters[letter_id], self.now)
            yield change
            self.letters[letter_id] = change.letter


@dataclass
class MemoryLetterChange:
    """The changes of one locked dead letter; the store keeps them when the change ends without an error."""

    letter: DeadLetter
    now: Callable[[], datetime]

    def replayed(self, by: str) -> DeadLetter:
        return self._set(state=REPLAYED, replays=self.letter.replays + 1, replayed_by=by, replayed_at=self.now(),
                         replay_error=None)

    def discarded(self, by: str, note: str | None) -> DeadLetter:
        return self._set(state=DISCARDED, discarded_by=by, discarded_at=self.now(), note=note)

    def refused(self, reason: str) -> DeadLetter:
        return self._set(replay_error=reason)

    def corrected(self, body: bytes, by: str) -> DeadLetter:
        return self._set(corrected_body=bytes(body), corrected_by=by, corrected_at=self.now())

    def _set(self, **values: Any) -> DeadLetter:
        self.letter = replace(self.letter, **values)
        return self.letter
