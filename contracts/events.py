"""Contracts of the event messages."""
from __future__ import annotations

import re
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from marshmallow import fields, post_load, pre_dump, validate, validates_schema

from contracts.base import RECORD_ID, ContractError, MessageSchema, NonEmpty, RecordId, check_version
from syncbridge.messages import CHANGES, DELTAS_PER_MESSAGE, ENTITIES, AmeiseRecordChanged, CrmRecordChanged

# A CRM module's API name (fullmatch); MODULE validates a schema field with it.
MODULE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")
MODULE = validate.Regexp(f"^{MODULE_NAME.pattern}$", error="Must be a CRM module API name.")


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


_schema = CrmRecordChangedSchema()


def crm_record_changed_body(event: CrmRecordChanged) -> dict:
    """The message body of ``event``: what ``CrmRecordChangedSchema().dump`` gives, checked against the contract.

    The receiver makes one per webhook: an event whose fields plainly satisfy the
    contract (the usual case) is written out directly, without marshmallow; any
    other goes through the schema's dump and validation, and one that breaks the
    contract raises ContractError, so a consumer never receives a message it would
    dead-letter as invalid.
    """
    received_at = event.received_at
    if (isinstance(event.event_id, str) and event.event_id and isinstance(event.source, str) and event.source
            and isinstance(event.module, str) and MODULE_NAME.fullmatch(event.module)
            and isinstance(event.record_id, str) and RECORD_ID.match(event.record_id)
            and isinstance(received_at, datetime) and received_at.utcoffset() is not None
            and (event.operation is None or isinstance(event.operation, str))
            and (event.modified_time is None or isinstance(event.modified_time, str))):
        return {
            "schema_version": CrmRecordChangedSchema.SCHEMA_VERSION,
            "event_id": event.event_id,
            "source": event.source,
            "module": event.module,
            "record_id": event.record_id,
            "received_at": received_at.isoformat(),
            "operation": event.operation,
            "modified_time": event.modified_time,
        }
    body = _schema.dump(event)
    errors = _schema.validate(body)
    if errors:
        raise ContractError(errors, "CrmRecordChanged does not satisfy its contract")
    return body


_CRM_RECORD_CHANGED_KEYS = frozenset(("schema_version", "event_id", "source", "module", "record_id", "received_at",
                                      "operation", "modified_time"))


def crm_record_changed_plain_load(body: Any) -> CrmRecordChanged | None:
    """The event of a message body that plainly meets the contract, as ``CrmRecordChangedSchema().load`` gives it.

    A worker reads one per message: a body as the receiver writes it (the usual case)
    becomes the event directly, without marshmallow.  Any other gives None: the caller
    then loads it with the schema, which names what is wrong (or what it tolerates).
    """
    if type(body) is not dict or not body.keys() <= _CRM_RECORD_CHANGED_KEYS:
        return None
    get = body.get
    event_id, source, module, record_id, received_at = (get("event_id"), get("source"), get("module"),
                                                        get("record_id"), get("received_at"))
    operation, modified_time = get("operation"), get("modified_time")
    if not (type(get("schema_version")) is int and get("schema_version") == CrmRecordChangedSchema.SCHEMA_VERSION
            and type(event_id) is str and event_id and type(source) is str and source
            and type(module) is str and MODULE_NAME.fullmatch(module)
            and type(record_id) is str and RECORD_ID.fullmatch(record_id)   # the whole text: no blank to strip
            and type(received_at) is str
            and (operation is None or type(operation) is str)
            and (modified_time is None or type(modified_time) is str)):
        return None
    try:
        at = datetime.fromisoformat(received_at)     # as the schema's AwareDateTime reads it
    except ValueError:
        return None
    if at.utcoffset() is None:
        return None
    return CrmRecordChanged(event_id=event_id, source=source, module=module, record_id=record_id, received_at=at,
                            operation=operation, modified_time=modified_time)


KEY = validate.Regexp(r"^\S{1,40}$", error="Must be a Kundennummer or Vertragsnummer (1 to 40 characters, no spaces).")


class AmeiseRecordChangedSchema(MessageSchema):
    """``ameise.<entity>.<change>`` v1: a DailyUp delta of one customer or contract.

    ``echoed_fields`` (optional, empty when absent) names the DailyUp columns that
    were delivered with the values the CRM -> Ameise direction last wrote: our own
    write coming back, not news for the CRM.  It was added within v1: a consumer
    that does not know it ignores it and sends the record whole, as before.
    """

    delta_id = fields.String(required=True, validate=NonEmpty)
    import_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    delivered_on = fields.Date(required=True)
    entity = fields.String(required=True, validate=validate.OneOf(ENTITIES))
    change = fields.String(required=True, validate=validate.OneOf(CHANGES))
    key = fields.String(required=True, validate=KEY)
    changed_fields = fields.List(fields.String(validate=NonEmpty), load_default=list)
    echoed_fields = fields.List(fields.String(validate=NonEmpty), load_default=list)

    @validates_schema
    def _version(self, data, **kwargs):
        check_version(self, data)

    @pre_dump
    def _add_version(self, obj, **kwargs):
        return {**obj.__dict__, "delivered_on": date.fromisoformat(obj.delivered_on), "schema_version": self.SCHEMA_VERSION}

    @post_load
    def _make(self, data, **kwargs) -> AmeiseRecordChanged:
        data.pop("schema_version")
        return AmeiseRecordChanged(**{**data, "delivered_on": data["delivered_on"].isoformat(),
                                      "changed_fields": tuple(data["changed_fields"]),
                                      "echoed_fields": tuple(data["echoed_fields"])})


class AmeiseDeltasSchema(MessageSchema):
    """``ameise.deltas`` v1: up to 100 DailyUp deltas in one message, as the DailyUp outbox sends them.

    ``deltas`` holds ``ameise.<entity>.<change>`` v1 bodies.  This contract checks the
    envelope only: the consumer loads each delta through :class:`AmeiseRecordChangedSchema`
    and settles it on its own, so one broken delta does not hold up the others.
    """

    deltas = fields.List(fields.Dict(), required=True, validate=validate.Length(min=1, max=DELTAS_PER_MESSAGE))

    @validates_schema
    def _version(self, data, **kwargs):
        check_version(self, data)

    @post_load
    def _items(self, data, **kwargs) -> list[dict]:
        return data["deltas"]


def ameise_deltas_body(deltas: list[dict]) -> dict:
    """The body of an ``ameise.deltas`` message of these delta bodies (each as the delta's contract dumps it)."""
    return {"schema_version": AmeiseDeltasSchema.SCHEMA_VERSION, "deltas": deltas}


_KEY = re.compile(r"\S{1,40}")
_ameise_schema = AmeiseRecordChangedSchema()


@lru_cache(maxsize=64)
def _iso_date(text: str) -> str | None:
    """The date ``text`` names, as the schema dumps it (YYYY-MM-DD); None if it is none (one per import, read once)."""
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        return None


def ameise_record_changed_plain_body(event: AmeiseRecordChanged) -> dict | None:
    """The message body of ``event`` as ``AmeiseRecordChangedSchema().dump`` gives it, if it plainly meets the contract.

    The DailyUp publishes one per delta, tens of thousands at a time: an event whose
    fields plainly satisfy the contract (the usual case) is written out directly,
    without marshmallow.  Any other gives None: the caller then dumps and validates
    it with the schema, which names what is wrong.
    """
    return ameise_record_changed_plain_body_of(event.delta_id, event.import_id, event.delivered_on, event.entity,
                                               event.change, event.key, event.changed_fields, event.echoed_fields)


def ameise_record_changed_plain_body_of(delta_id: Any, import_id: Any, delivered_on: Any, entity: Any, change: Any,
                                        key: Any, changed: Any, echoed: Any) -> dict | None:
    """:func:`ameise_record_changed_plain_body` of an event given by its fields (none made for a delta that passes)."""
    if not (isinstance(delta_id, str) and delta_id
            and type(import_id) is int and import_id >= 1
            and entity in ENTITIES and change in CHANGES
            and isinstance(key, str) and _KEY.fullmatch(key)
            and isinstance(changed, (tuple, list)) and all(isinstance(f, str) and f for f in changed)
            and isinstance(echoed, (tuple, list)) and all(isinstance(f, str) and f for f in echoed)
            and isinstance(delivered_on, str)):
        return None
    day = _iso_date(delivered_on)
    if day is None:
        return None
    return {
        "schema_version": AmeiseRecordChangedSchema.SCHEMA_VERSION,
        "delta_id": delta_id,
        "import_id": import_id,
        "delivered_on": day,
        "entity": entity,
        "change": change,
        "key": key,
        "changed_fields": list(changed),
        "echoed_fields": list(echoed),
    }
