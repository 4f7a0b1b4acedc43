"""A worker's reading of a CRM event's message body: the schema's load, without marshmallow on the usual path."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.base import ContractError, load_or_raise
from contracts.events import CrmRecordChangedSchema, crm_record_changed_body, crm_record_changed_plain_load
from syncbridge.messages import CrmRecordChanged

schema = CrmRecordChangedSchema()

texts = st.one_of(st.text(max_size=12), st.sampled_from(["Contacts", "Deals", "Leads_X", "4150868000000376008"]))
values = st.one_of(texts, st.none(), st.integers(), st.floats(allow_nan=False), st.booleans(),
                   st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
stamps = st.one_of(
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]))
    .map(datetime.isoformat),
    st.datetimes().map(datetime.isoformat),                                      # naive: breaks the contract
    st.sampled_from(["2026-01-05T09:00:00Z", "2026-01-05 09:00:00+01:00", "2026-01-05", "gestern", ""]),
)
valid = st.builds(
    lambda event_id, module, record_id, at, operation: crm_record_changed_body(CrmRecordChanged(
        event_id=event_id, source="zoho-workflow", module=module, record_id=record_id, received_at=at,
        operation=operation)),
    st.text(min_size=1, max_size=8), st.sampled_from(["Contacts", "Deals", "Leads_X"]),
    st.from_regex(r"[0-9]{1,30}", fullmatch=True),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))])),
    st.one_of(st.none(), texts))
changes = {
    "schema_version": st.sampled_from([2, "1", 1.0, True, None]),
    "event_id": st.one_of(st.just(""), values), "source": st.one_of(st.just(""), values),
    "module": st.one_of(st.sampled_from(["1Deals", "Con tacts", "Contacts\n", "x" * 101]), values),
    "record_id": st.one_of(st.sampled_from([" 123 ", "1" * 31, "12a", "123\n"]), values),
    "received_at": st.one_of(stamps, values), "operation": values, "modified_time": values, "extra": values,
}


@st.composite
def bodies(draw):
    """A body as the receiver writes it; or with one key changed, left out or added."""
    body = dict(draw(valid))
    change = draw(st.sampled_from([None, "drop", *changes]))
    if change == "drop":
        del body[draw(st.sampled_from(sorted(body)))]
    elif change is not None:
        body[change] = draw(changes[change])
    return body


@settings(max_examples=600, deadline=None)
@given(bodies())
def test_a_plain_load_is_the_schemas_load_or_leaves_the_body_to_the_schema(body):
    plain = crm_record_changed_plain_load(body)
    try:
        loaded = load_or_raise(schema, body)
    except ContractError:
        assert plain is None            # a body the schema refuses is never taken plainly
        return
    assert plain is None or plain == loaded


def test_the_receivers_body_is_loaded_without_the_schema(monkeypatch):
    event = CrmRecordChanged(event_id="e-1", source="zoho-workflow", module="Contacts",
                             record_id="4150868000000376008", received_at=datetime(2026, 1, 5, 9, 0, 1, 5, tzinfo=UTC),
                             operation="update", modified_time="2026-01-05T10:00:00+01:00")
    body = crm_record_changed_body(event)

    def refuse(*args, **kwargs):
        raise AssertionError("marshmallow was used for a plain body")

    monkeypatch.setattr(CrmRecordChangedSchema, "load", refuse)
    assert crm_record_changed_plain_load(body) == event
    assert crm_record_changed_plain_load({k: v for k, v in body.items() if k not in ("operation", "modified_time")}) \
        == CrmRecordChanged(**{**event.__dict__, "operation": None, "modified_time": None})
    assert crm_record_changed_plain_load([body]) is None
