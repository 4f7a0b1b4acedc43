"""A workflow webhook's parameters read without marshmallow: what the contract's schema loads, or left to the schema."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from contracts.webhooks import ZohoWorkflowWebhookSchema, plain_workflow_webhook

schema = ZohoWorkflowWebhookSchema()

texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "\t\n", "Contacts", "contacts", "Deals_2", "1Deals", "Con tacts", "Contacts\n",
                     " Contacts", "update", "2026-01-05T10:00:00+01:00", "x" * 101]),
)
record_ids = st.one_of(
    st.from_regex(r"[0-9]{1,30}", fullmatch=True),
    st.from_regex(r"\s*[0-9]{1,32}\s*", fullmatch=True),
    st.sampled_from(["", " ", "4150868000000376008", " 4150868000000376008\n", "12a", "١٢٣", "1" * 31]),
    texts,
)
others = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.lists(st.integers(), max_size=2),
                   st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
params = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(record_ids, others),
        "module": st.one_of(texts, others),
        "operation": st.one_of(texts, others),
        "modified_time": st.one_of(texts, others),
        "token": texts,
        "Owner_Name": st.one_of(texts, others),
    },
)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(params, st.lists(st.integers(), max_size=2), st.none(), st.text(max_size=3)))
def test_plain_parameters_load_as_the_schema_loads_them(given_params):
    plain = plain_workflow_webhook(given_params)
    try:
        expected = schema.load(given_params)
    except ValidationError:
        assert plain is None, "parameters the contract refuses were read as plain"
        return
    if plain is not None:
        assert plain == expected


@pytest.mark.parametrize("given_params", [
    {"id": "4150868000000376008", "operation": "update", "modified_time": "2026-01-05T10:00:00+01:00"},
    {"id": "4150868000000376008"},
    {"id": " 4150868000000376008 ", "module": "Contacts", "operation": "", "token": "s", "Owner_Name": "Ann"},
    {"id": "7", "module": None, "operation": None, "modified_time": None},
])
def test_a_usual_webhook_is_read_without_the_schema(given_params):
    assert plain_workflow_webhook(given_params) == schema.load(given_params)


@pytest.mark.parametrize("given_params", [
    {"id": 4150868000000376008},                 # a number: the schema refuses it (precision)
    {"id": "41508680000003760x"},
    {"module": "Contacts"},                     # no id
    {"id": "7", "module": "Contacts\n"},        # the schema's regular expression decides
    {"id": "7", "module": "Con tacts"},
    {"id": "7", "operation": 3},
])
def test_anything_else_is_left_to_the_schema(given_params):
    assert plain_workflow_webhook(given_params) is None
