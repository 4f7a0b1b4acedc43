"""Contracts of what arrives at the webhook receiver (input only; never published).

Form-encoded and query parameters arrive as strings, JSON bodies with their own
types; a record id must be a digit *string* in every case.  Unknown fields are
excluded: Zoho users add custom parameters (and the ``token``) to their webhooks.
Blank values count as absent, as Zoho sends empty merge fields as ``field=``.
"""
from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, pre_load, validates_schema

from contracts.base import RECORD_ID, NonEmpty, RecordId
from contracts.events import MODULE, MODULE_NAME


class _StringOrNumber(fields.String):
    """A string; a JSON number is accepted and kept as its text (Zoho sends some ids either way)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return super()._deserialize(value, attr, data, **kwargs)


class _WebhookSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    @pre_load
    def _blank_is_absent(self, data, **kwargs):
        if not isinstance(data, dict):
            raise ValidationError("Must be an object of fields.", field_name="_schema")
        return {key: value for key, value in data.items() if not (isinstance(value, str) and not value.strip())}


class ZohoWorkflowWebhookSchema(_WebhookSchema):
    """A Zoho workflow-rule webhook: ``id`` of the record, optionally its module and what happened."""

    id = RecordId(required=True)
    module = fields.String(load_default=None, validate=MODULE)
    operation = fields.String(load_default=None)
    modified_time = fields.String(load_default=None)


def plain_workflow_webhook(params: Any) -> dict[str, Any] | None:
    """What ``ZohoWorkflowWebhookSchema().load(params)`` gives, if ``params`` plainly satisfy the contract; else None.

    The receiver loads one per webhook: parameters that plainly satisfy the contract
    (the usual case: a digit-string ``id``, text or nothing in the other fields) are
    read directly, without marshmallow.  For anything else the caller loads them
    with the schema, which decides and names what is wrong.
    """
    if type(params) is not dict:
        return None
    record_id = params.get("id")
    if type(record_id) is not str:
        return None
    record_id = record_id.strip()
    if not RECORD_ID.match(record_id):
        return None
    data: dict[str, Any] = {"id": record_id, "module": None, "operation": None, "modified_time": None}
    for name in ("module", "operation", "modified_time"):
        value = params.get(name)
        if value is None:
            continue        # absent, or null: the field's default
        if type(value) is not str:
            return None
        if not value.strip():
            continue        # blank counts as absent
        if name == "module" and not MODULE_NAME.fullmatch(value):
            return None
        data[name] = value
    return data


class ZohoNotificationSchema(_WebhookSchema):
    """A Zoho Notification API callback: one or more record ids of one module."""

    ids = fields.List(RecordId(), required=True, validate=NonEmpty)
    module = fields.String(required=True, validate=MODULE)
    operation = fields.String(load_default=None)
    token = fields.String(load_default=None)
    channel_id = _StringOrNumber(load_default=None)
    server_time = fields.Integer(load_default=None)
    resource_uri = fields.String(load_default=None)
    affected_fields = fields.List(fields.Raw(), load_default=list)
    query_params = fields.Dict(load_default=dict)


class FormsWebhookSchema(_WebhookSchema):
    """A Zoho Flow / Zoho Forms call: the record id as ``id`` or ``record_id``, optionally module and operation."""

    id = RecordId(load_default=None)
    record_id = RecordId(load_default=None)
    module = fields.String(load_default=None, validate=MODULE)
    operation = fields.String(load_default=None)

    @validates_schema
    def _one_record_id(self, data, **kwargs):
        if data.get("id") is None and data.get("record_id") is None:
            raise ValidationError("Missing data for required field (id or record_id).", field_name="id")
        if data.get("id") is not None and data.get("record_id") is not None and data["id"] != data["record_id"]:
            raise ValidationError("id and record_id name different records.", field_name="record_id")

    @post_load
    def _merge_id(self, data, **kwargs):
        record_id = data.pop("id") or data.pop("record_id")
        data.pop("record_id", None)
        return {**data, "record_id": record_id}
