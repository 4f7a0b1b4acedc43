"""The in-memory proposal store of first-time linking; same semantics as ``SqlLinkingStore``."""
from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime

from simulators.fakes.snapshot import MemorySnapshot
from syncbridge.ports import (
    ACCEPTED,
    OPEN_PROPOSAL_STATES,
    PROPOSAL_STATES,
    SUPERSEDED,
    LinkProposal,
    LinkRun,
    SnapshotRow,
)


class MemoryLinkingStore:
    """Proposals and runs in dicts; the Ameise side from a :class:`MemorySnapshot`."""

    def __init__(self, snapshot: MemorySnapshot | None = None) -> None:
        self.snapshot = snapshot or MemorySnapshot()
        self._lock = threading.Lock()
        self._runs: list[LinkRun] = []
        self._proposals: dict[int, LinkProposal] = {}
        self._ids = itertools.count(1)

    def snapshot_records(self, table: str) -> Iterator[SnapshotRow]:
        rows = sorted((row for (name, _key), row in self.snapshot.rows.items() if name == table and not row.deleted),
                      key=lambda row: row.key)
        yield from rows

    def record_run(self, *, by: str, at: datetime, counts: dict[str, int],
                   proposals: Sequence[LinkProposal]) -> LinkRun:
        with self._lock:
            run = LinkRun(len(self._runs) + 1, at, by, dict(counts))
            self._runs.append(run)
            for pid, old in list(self._proposals.items()):
                if old.status in OPEN_PROPOSAL_STATES:
                    self._proposals[pid] = replace(old, status=SUPERSEDED)
            for proposal in proposals:
                pid = next(self._ids)
                self._proposals[pid] = replace(proposal, id=pid, run_id=run.id, decided_by=None, decided_at=None)
            return run

    def last_run(self) -> LinkRun | None:
        with self._lock:
            return self._runs[-1] if self._runs else None

    def proposals(self, *, statuses: Sequence[str] | None = None, after_id: int = 0,
                  limit: int | None = 100) -> list[LinkProposal]:
        with self._lock:
            found = [p for pid, p in sorted(self._proposals.items())
                     if pid > after_id and (statuses is None or p.status in statuses)]
        return found if limit is None else found[:limit]

    def proposal(self, proposal_id: int) -> LinkProposal | None:
        with self._lock:
            return self._proposals.get(proposal_id)

    def decide(self, proposal_id: int, status: str, *, by: str, at: datetime) -> LinkProposal:
        if status not in PROPOSAL_STATES:
            raise ValueError(f"unknown proposal status {status!r}")
        with self._lock:
            proposal = self._proposals.get(proposal_id)
            if proposal is None or proposal.status not in OPEN_PROPOSAL_STATES:
                raise ValueError(f"proposal {proposal_id} is not open")
            decided = replace(proposal, status=status, decided_by=by, decided_at=at)
            self._proposals[proposal_id] = decided
            if status == ACCEPTED:
                for pid, other in list(self._proposals.items()):
                    if pid != proposal_id and other.status in OPEN_PROPOSAL_STATES and other.entity == proposal.entity \
                            and (other.ameise_key == proposal.ameise_key or other.zoho_id == proposal.zoho_id):
                        self._proposals[pid] = replace(other, status=SUPERSEDED, decided_by=by, decided_at=at)
            return decided

    def open_proposals_for(self, entity: str, ameise_key: str) -> list[LinkProposal]:
        with self._lock:
            return [p for _pid, p in sorted(self._proposals.items())
                    if p.entity == entity and p.ameise_key == ameise_key and p.status in OPEN_PROPOSAL_STATES]

    def count_proposals(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(p.status for p in self._proposals.values()))
