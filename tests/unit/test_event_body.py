"""The receiver's message body of a CRM event: the schema's dump, checked, without marshmallow on the usual path."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.base import ContractError
from contracts.events import CrmRecordChangedSchema, crm_record_changed_body
from syncbridge.messages import CrmRecordChanged

schema = CrmRecordChangedSchema()

texts = st.one_of(st.text(max_size=12), st.sampled_from(["Contacts", "Deals", "Leads_X", "4150868000000376008"]))
events = st.builds(
    CrmRecordChanged,
    event_id=texts,
    source=st.one_of(texts, st.just("zoho-workflow")),
    module=st.one_of(texts, st.sampled_from(["Contacts", "Deals", "1Deals", "Con tacts", "Contacts\n"])),
    record_id=st.one_of(st.from_regex(r"[0-9]{1,30}", fullmatch=True), texts, st.just(" 123 "),
                        st.just("1" * 31)),
    received_at=st.one_of(
        st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))])),
        st.datetimes()),   # naive: breaks the contract
    operation=st.one_of(st.none(), texts),
    modified_time=st.one_of(st.none(), texts),
)


@settings(max_examples=400, deadline=None)
@given(events)
def test_the_body_is_the_schemas_dump_or_the_schemas_error(event):
    expected = schema.dump(event)
    errors = schema.validate(expected)
    if errors:
        with pytest.raises(ContractError) as caught:
            crm_record_changed_body(event)
        assert caught.value.errors == errors
    else:
        body = crm_record_changed_body(event)
        assert body == expected and list(body) == list(expected)
        assert schema.load(body) == CrmRecordChanged(**{**event.__dict__, "record_id": event.record_id.strip()})


def test_a_plain_event_is_written_without_the_schema(monkeypatch):
    event = CrmRecordChanged(event_id="e-1", source="zoho-workflow", module="Contacts",
                             record_id="4150868000000376008", received_at=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
                             operation="update", modified_time="2026-01-05T10:00:00+01:00")
    expected = schema.dump(event)

    def refuse(*args, **kwargs):
        raise AssertionError("marshmallow was used for a plain event")

    monkeypatch.setattr(CrmRecordChangedSchema, "dump", refuse)
    monkeypatch.setattr(CrmRecordChangedSchema, "validate", refuse)
    assert crm_record_changed_body(event) == expected
