"""The proposal store of first-time linking on SQLite, PostgreSQL and in memory: one behaviour."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from simulators.fakes.linking import MemoryLinkingStore
from syncbridge.adapters.db.linking import SNAPSHOT, SqlLinkingStore
from syncbridge.ports import ACCEPTED, AMBIGUOUS, CERTAIN, PROPOSED, REJECTED_PROPOSAL, SUPERSEDED, LinkProposal
from tests.support.databases import emptied_engine

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
ROWS = {("kunden", "K2"): ({"Vorname": "Paul"}, False), ("kunden", "K1"): ({"Vorname": "Erika"}, False),
        ("kunden", "K3"): ({"Vorname": "Gone"}, True), ("vertraege", "V1"): ({"Kundennummer": "K1"}, False)}


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def proposals(request) -> Iterator:
    if request.param == "memory":
        store = MemoryLinkingStore()
        for (table, key), (data, deleted) in ROWS.items():
            store.snapshot.put(table, key, data, deleted=deleted)
        yield store
        return
    engine = emptied_engine(request.getfixturevalue(f"migrated_{request.param}_url"))
    with engine.begin() as conn:
        conn.execute(insert(SNAPSHOT), [{"table": table, "key": key, "hash": "h", "data": data, "deleted": deleted,
                                         "import_id": None, "updated_at": T0}
                                        for (table, key), (data, deleted) in ROWS.items()])
    yield SqlLinkingStore(engine)
    engine.dispose()


def pair(key: str, zoho_id: str, status: str, score: int = 95) -> LinkProposal:
    return LinkProposal(entity="customer", kind="person", ameise_key=key, zoho_module="Contacts", zoho_id=zoho_id,
                        score=score, reasons=("e-mail equal", "name similar (92%)"), status=status,
                        ameise_label="Jürgen Müller, 1964-08-12", crm_label="Juergen Mueller")


def test_the_snapshot_is_read_by_key_without_deleted_rows(proposals):
    assert [(r.key, r.data) for r in proposals.snapshot_records("kunden")] == [("K1", {"Vorname": "Erika"}),
                                                                               ("K2", {"Vorname": "Paul"})]
    assert [r.key for r in proposals.snapshot_records("vertraege")] == ["V1"]


def test_a_run_keeps_its_proposals_with_reasons_and_labels(proposals):
    assert proposals.last_run() is None
    run = proposals.record_run(by="anna", at=T0, counts={"certain": 1, "ambiguous": 1},
                               proposals=[pair("K1", "z1", CERTAIN), pair("K2", "z2", AMBIGUOUS, 70),
                                          pair("K2", "z3", AMBIGUOUS, 68)])
    assert (run.started_by, run.counts) == ("anna", {"certain": 1, "ambiguous": 1})
    last = proposals.last_run()
    assert (last.id, last.started_at, last.counts) == (run.id, T0, run.counts)
    first, second, third = proposals.proposals()
    assert (first.ameise_key, first.reasons, first.ameise_label, first.run_id) == (
        "K1", ("e-mail equal", "name similar (92%)"), "Jürgen Müller, 1964-08-12", run.id)
    assert [p.id for p in proposals.proposals(statuses=(AMBIGUOUS,))] == [second.id, third.id]
    assert [p.id for p in proposals.proposals(after_id=first.id, limit=1)] == [second.id]
    assert proposals.proposal(second.id) == second
    assert proposals.proposal(10**9) is None
    assert [p.zoho_id for p in proposals.open_proposals_for("customer", "K2")] == ["z2", "z3"]
    assert proposals.open_proposals_for("contract", "K2") == []
    assert proposals.count_proposals() == {CERTAIN: 1, AMBIGUOUS: 2}


def test_accepting_supersedes_the_rivals_and_a_decided_proposal_cannot_be_decided_again(proposals):
    proposals.record_run(by="anna", at=T0, counts={}, proposals=[
        pair("K1", "z1", CERTAIN), pair("K2", "z2", AMBIGUOUS), pair("K2", "z3", AMBIGUOUS),
        pair("K4", "z3", PROPOSED)])
    k1, k2a, k2b, k4 = proposals.proposals()
    decided = proposals.decide(k2b.id, ACCEPTED, by="ben", at=T0 + timedelta(minutes=1))
    assert (decided.status, decided.decided_by, decided.decided_at) == (ACCEPTED, "ben", T0 + timedelta(minutes=1))
    assert proposals.proposal(k2a.id).status == SUPERSEDED      # the same customer
    assert proposals.proposal(k4.id).status == SUPERSEDED       # the same CRM record
    assert proposals.proposal(k1.id).status == CERTAIN
    assert proposals.open_proposals_for("customer", "K2") == []
    with pytest.raises(ValueError, match="not open"):
        proposals.decide(k2a.id, REJECTED_PROPOSAL, by="ben", at=T0)
    assert proposals.decide(k1.id, REJECTED_PROPOSAL, by="ben", at=T0).status == REJECTED_PROPOSAL


def test_a_new_run_supersedes_the_open_proposals_of_the_last_and_keeps_decisions(proposals):
    proposals.record_run(by="anna", at=T0, counts={}, proposals=[pair("K1", "z1", CERTAIN), pair("K2", "z2", PROPOSED)])
    k1, k2 = proposals.proposals()
    proposals.decide(k1.id, ACCEPTED, by="anna", at=T0)
    run = proposals.record_run(by="anna", at=T0 + timedelta(days=1), counts={}, proposals=[pair("K2", "z2", PROPOSED)])
    assert proposals.proposal(k1.id).status == ACCEPTED
    assert proposals.proposal(k2.id).status == SUPERSEDED
    [fresh] = proposals.open_proposals_for("customer", "K2")
    assert fresh.run_id == run.id and proposals.last_run().id == run.id
