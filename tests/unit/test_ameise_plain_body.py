"""The DailyUp delta's message body without marshmallow: the schema's own dump, or None for the schema to judge."""
from __future__ import annotations

import dataclasses

import pytest

from contracts.events import AmeiseRecordChangedSchema, ameise_record_changed_plain_body
from syncbridge.messages import AmeiseRecordChanged

schema = AmeiseRecordChangedSchema()
GOOD = AmeiseRecordChanged(delta_id="dailyup-7-customer-K1", import_id=7, delivered_on="2026-11-30", entity="customer",
                           change="changed", key="K-0001", changed_fields=("name", "plz"), echoed_fields=("ort",))


@pytest.mark.parametrize("event", [GOOD, dataclasses.replace(GOOD, change="created", changed_fields=(), echoed_fields=()),
                                   dataclasses.replace(GOOD, entity="contract", change="deleted", key="V/1-2")])
def test_a_plainly_valid_event_gives_what_the_schema_dumps(event):
    body = ameise_record_changed_plain_body(event)

    assert list(body.items()) == list(schema.dump(event).items())
    assert schema.validate(body) == {}


@pytest.mark.parametrize("change", [
    {"delta_id": ""}, {"import_id": 0}, {"import_id": True}, {"import_id": "7"}, {"entity": "kunde"},
    {"change": "updated"}, {"key": "K 1"}, {"key": ""}, {"key": "K" * 41}, {"key": "K1\n"},
    {"changed_fields": ("name", "")}, {"echoed_fields": (None,)}, {"delivered_on": "30.11.2026"},
])
def test_anything_else_is_left_to_the_schema(change):
    assert ameise_record_changed_plain_body(dataclasses.replace(GOOD, **change)) is None
