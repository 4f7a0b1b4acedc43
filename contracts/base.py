"""Shared parts of the contracts."""
from __future__ import annotations

import re

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

RECORD_ID = re.compile(r"^[0-9]{1,30}$")


class ContractError(Exception):
    """A message or body does not satisfy its contract; ``errors`` maps field -> messages."""

    def __init__(self, errors: dict, message: str = "contract violated") -> None:
        super().__init__(f"{message}: {errors}")
        self.errors = errors


class RecordId(fields.String):
    """A Zoho record id: a string of digits.  An int is refused, as precision would be lost in JSON clients."""

    default_error_messages = {"invalid_id": "Must be a record id: a string of digits."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise self.make_error("invalid")
        value = value.strip()
        if not RECORD_ID.match(value):
            raise self.make_error("invalid_id")
        return value


class MessageSchema(Schema):
    """Base of every queue message: a version, and additive fields tolerated.

    ``unknown = EXCLUDE``: a newer producer may add fields without breaking older
    consumers; an incompatible change bumps ``schema_version``, which older
    consumers refuse (the message goes to the dead letters, never lost).
    """

    SCHEMA_VERSION = 1

    class Meta:
        unknown = EXCLUDE

    schema_version = fields.Integer(required=True)



def check_version(schema: MessageSchema, data: dict) -> None:
    if data.get("schema_version") != schema.SCHEMA_VERSION:
        raise ValidationError(
            f"Unsupported schema version {data.get('schema_version')!r}; this consumer reads version {schema.SCHEMA_VERSION}.",
            field_name="schema_version",
        )


def load_or_raise(schema: Schema, data) -> object:
    """``schema.load`` that raises :class:`ContractError` instead of ValidationError."""
    try:
        return schema.load(data)
    except ValidationError as exc:
        errors = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise ContractError(errors) from exc


NonEmpty = validate.Length(min=1)
