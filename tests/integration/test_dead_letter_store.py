"""One suite for the dead-letter archive: the in-memory fake, SQLite and PostgreSQL behave alike."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from simulators.fakes.dead_letters import MemoryDeadLetterStore
from syncbridge.adapters.db.dead_letters import SqlDeadLetterStore
from syncbridge.ports import DEAD, DISCARDED, REPLAYED, DeadLetter, DeadLetterFilter
from tests.support.databases import emptied_engine

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
CP1252 = "Grüße – Müller €".encode("cp1252")


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def letters(request) -> Iterator[MemoryDeadLetterStore | SqlDeadLetterStore]:
    if request.param == "memory":
        yield MemoryDeadLetterStore()
        return
    engine = emptied_engine(request.getfixturevalue(f"migrated_{request.param}_url"))
    yield SqlDeadLetterStore(engine)
    engine.dispose()


def letter(n: int, *, queue: str = "crm-to-ameise", kind: str = "rejected", record: str | None = None,
           at: datetime = T0, body: bytes = b'{"a": 1}') -> DeadLetter:
    return DeadLetter(fingerprint=f"fp-{n}", queue=queue, kind=kind, record=record or f"rec-{n}", exchange="ns.events",
                      routing_key="crm.contacts.changed", message_id=f"m-{n}", content_type="application/json",
                      headers={"x-n": n}, body=body, reason=f"reason {n}", first_error=None, attempts=1,
                      first_failed_at=at, dead_lettered_at=at)


def test_a_letter_is_kept_as_it_came_byte_for_byte_and_starts_dead(letters):
    letter_id = letters.archive(letter(1, body=CP1252))
    stored = letters.get(letter_id)
    assert stored.body == CP1252 and stored.headers == {"x-n": 1} and stored.dead_lettered_at == T0
    assert (stored.id, stored.state, stored.replays, stored.fingerprint) == (letter_id, DEAD, 0, "fp-1")
    assert stored.archived_at is not None and stored.archived_at.tzinfo is not None
    assert letters.get(letter_id + 1000) is None


def test_the_same_fingerprint_is_one_row_with_the_first_id(letters):
    first = letters.archive(letter(1))
    assert letters.archive(letter(1, kind="error")) == first
    assert letters.count() == 1 and letters.get(first).kind == "rejected"


def test_find_filters_newest_first_and_limits(letters):
    ids = [letters.archive(letter(n, queue="ameise-to-crm" if n % 2 else "crm-to-ameise",
                                  kind="contract" if n == 3 else "rejected", at=T0 + timedelta(minutes=n)))
           for n in range(1, 6)]
    assert [x.id for x in letters.find()] == ids[::-1]
    assert [x.id for x in letters.find(limit=2)] == [ids[4], ids[3]]
    assert [x.id for x in letters.find(DeadLetterFilter(queue="ameise-to-crm"))] == [ids[4], ids[2], ids[0]]
    assert [x.id for x in letters.find(DeadLetterFilter(kind="contract"))] == [ids[2]]
    assert [x.id for x in letters.find(DeadLetterFilter(record="rec-2"))] == [ids[1]]
    window = DeadLetterFilter(since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4))
    assert [x.id for x in letters.find(window)] == [ids[2], ids[1]]       # since inclusive, until exclusive
    assert letters.count(window) == 2 and letters.count(DeadLetterFilter(state=REPLAYED)) == 0
    with pytest.raises(ValueError):
        letters.find(limit=-1)
    with pytest.raises(ValueError, match="naive"):
        letters.find(DeadLetterFilter(since=datetime(2025, 3, 1)))


def test_ids_are_read_page_by_page_in_id_order(letters):
    ids = [letters.archive(letter(n, at=T0 - timedelta(minutes=n))) for n in range(1, 8)]
    assert letters.ids(DeadLetterFilter(), limit=3) == ids[:3]
    assert letters.ids(DeadLetterFilter(), after=ids[2], limit=3) == ids[3:6]
    assert letters.ids(DeadLetterFilter(record="rec-7"), after=0) == [ids[6]]


def test_a_change_is_kept_when_it_ends_and_counts_replays(letters):
    letter_id = letters.archive(letter(1))
    with letters.change(letter_id) as change:
        change.refused("contract v2: field x missing")
    assert letters.get(letter_id).replay_error == "contract v2: field x missing"
    for _ in range(2):
        with letters.change(letter_id) as change:
            change.replayed("ops@example.de")
    stored = letters.get(letter_id)
    assert (stored.state, stored.replays, stored.replayed_by, stored.replay_error) == (
        REPLAYED, 2, "ops@example.de", None)
    assert stored.replayed_at is not None
    with letters.change(letter_id) as change:
        change.discarded("ops@example.de", "test delivery")
    stored = letters.get(letter_id)
    assert (stored.state, stored.discarded_by, stored.note) == (DISCARDED, "ops@example.de", "test delivery")
    assert letters.count(DeadLetterFilter(state=DISCARDED)) == 1


def test_a_change_that_fails_is_rolled_back(letters):
    letter_id = letters.archive(letter(1))
    with pytest.raises(RuntimeError), letters.change(letter_id) as change:
        change.replayed("ops@example.de")
        raise RuntimeError("the broker did not confirm")
    stored = letters.get(letter_id)
    assert (stored.state, stored.replays, stored.replayed_by) == (DEAD, 0, None)


def test_changing_an_unknown_letter_gives_none(letters):
    with letters.change(4711) as change:
        assert change is None


def test_free_text_matches_reason_record_routing_key_or_message_id_in_any_case_and_literally(letters):
    ids = [letters.archive(replace(letter(n), reason=reason)) for n, reason in
           enumerate(("Zoho INVALID_DATA field=Email", "50% off_by one", "ameise 422 Ort"), start=1)]
    assert [x.id for x in letters.find(DeadLetterFilter(text="invalid_data"))] == [ids[0]]
    assert [x.id for x in letters.find(DeadLetterFilter(text="50%"))] == [ids[1]]
    assert letters.count(DeadLetterFilter(text="5_%")) == 0             # % and _ are no wildcards
    assert [x.id for x in letters.find(DeadLetterFilter(text="REC-3"))] == [ids[2]]
    assert letters.count(DeadLetterFilter(text="contacts.changed")) == 3 and letters.count(DeadLetterFilter(text="m-2")) == 1


def test_the_cause_filters_and_a_correction_is_kept_beside_the_original(letters):
    first = letters.archive(replace(letter(1), cause="rejected zoho INVALID_DATA field=Email"))
    letters.archive(replace(letter(2), cause="contract-violation"))
    assert [x.id for x in letters.find(DeadLetterFilter(cause="rejected zoho INVALID_DATA field=Email"))] == [first]
    with letters.change(first) as change:
        corrected = change.corrected(b'{"a": 2}', "operator")
    stored = letters.get(first)
    assert stored == corrected and stored.body == b'{"a": 1}' and stored.corrected_body == b'{"a": 2}'
    assert stored.replay_body == b'{"a": 2}' and stored.corrected_by == "operator" and stored.corrected_at is not None
    assert stored.state == DEAD and letters.get(first + 1).replay_body == b'{"a": 1}'
