"""Contracts of the event messages."""
from __future__ import annotations

from marshmallow import fields, post_load, pre_dump, validate, validates_schema

from contracts.base import MessageSchema, NonEmpty, RecordId, check_version
from syncbridge.messages import CrmRecordChanged

MODULE = validate.Regexp(r"^[A-Za-z][A-Za-z0-9_]{0,99}$", error="Must be a CRM module API name.")


class CrmRecordChangedSchema(MessageSchema):
    """``crm.<module>.changed`` v1: a CRM record changed; the consumer reads it in full."""

    event_id = fields.String(required=True, validate=NonEmpty)
    source = fields.String(required=True, validate=NonEmpty)
    module = fields.String(required=True, validate=MODULE)
    record_id = RecordId(required=True)
    received_at = fields.AwareDateTime(required=True)
    operation = fields.String(load_default=None, allow_none=True)
    modified_time = fields.String(load_default=None, allow_none=True)

    @validates_schema
    def _version(self, data, **kwargs):
        check_version(self, data)

    @pre_dump
    def _add_version(self, obj, **kwargs):
        return {**obj.__dict__, "schema_version": self.SCHEMA_VERSION}

    @post_load
    def _make(self, data, **kwargs) -> CrmRecordChanged:
        data.pop("schema_version")
        return CrmRecordChanged(**data)
