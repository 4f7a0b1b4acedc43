"""The admin API's parameters: query strings, path ids and the fields of replay and discard bodies.

Everything a caller sends is checked here before it reaches the database:
whole numbers are ASCII digits within range (ids fit a signed 64-bit column),
times are ISO 8601 and representable in UTC, text holds no control characters
or lone surrogates (PostgreSQL text cannot hold NUL, and its driver cannot
encode a surrogate).  Which values a filter may name (queues, kinds, states) is
:func:`syncbridge.handlers.dead_letters.parse_filter`'s business.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields

MAX_ID = 2**63 - 1                       # a BIGINT primary key
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000     # dead letters per list
IMPORTS_DEFAULT_LIMIT, IMPORTS_MAX_LIMIT = 20, 500
MAX_IDS = 1000                           # ids per replay or discard
MAX_TEXT = 255
_DIGITS = re.compile(r"[0-9]{1,19}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_SHOWN = 40                              # characters of a refused value quoted back


def shown(value: Any) -> str:
    """A refused value as quoted back to the caller: repr, cut short."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def parse_id(value: Any) -> int | None:
    """A row id from text or a JSON number: 1..2^63-1 (ASCII digits only), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not _DIGITS.fullmatch(value):
            return None
        value = int(value)
    if not isinstance(value, int) or not 1 <= value <= MAX_ID:
        return None
    return value


def bad_text(value: str, *, lines: bool = False) -> str | None:
    """Why ``value`` cannot be stored as text, or None (control characters, lone surrogates)."""
    for char in value:
        if lines and char in "\n\t":
            continue
        category = unicodedata.category(char)
        if category == "Cc":
            return "must not contain control characters"
        if category == "Cs":
            return "must not contain lone surrogates"
    return None


def utc_time(value: str) -> datetime:
    """An ISO 8601 date or time as an aware UTC datetime (none given: UTC); ValueError when not one."""
    parsed = datetime.fromisoformat(value)
    try:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00+14:00 is before the first representable UTC time.
        raise ValueError("out of range") from None


class WholeNumber(fields.Field):
    """A whole number written in ASCII digits (``"²"`` and ``"１"`` are not), within ``low..high``."""

    def __init__(self, low: int, high: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.low, self.high = low, high

    def _deserialize(self, value, attr, data, **kwargs) -> int:
        text = value if isinstance(value, str) else None
        if text is None or not _DIGITS.fullmatch(text) or not self.low <= int(text) <= self.high:
            raise ValidationError(f"must be a whole number from {self.low} to {self.high}, not {shown(value)}")
        return int(text)


class Text(fields.Field):
    """A string of at most ``max_length`` characters, without control characters or lone surrogates."""

    def __init__(self, max_length: int = MAX_TEXT, *, lines: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_length, self.lines = max_length, lines

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        if not isinstance(value, str):
            raise ValidationError("must be a string")
        if len(value) > self.max_length:
            raise ValidationError(f"must be at most {self.max_length} characters")
        problem = bad_text(value, lines=self.lines)
        if problem:
            raise ValidationError(problem)
        return value


class Timestamp(fields.Field):
    """An ISO 8601 date or time (2026-12-01, 2026-12-01T08:00Z), returned as an aware UTC datetime."""

    def _deserialize(self, value, attr, data, **kwargs) -> datetime | None:
        if not isinstance(value, str):
            raise ValidationError("must be a string")
        if not value.strip():
            return None
        try:
            return utc_time(value.strip())
        except ValueError:
            raise ValidationError("must be an ISO 8601 date or time (e.g. 2026-12-01 or 2026-12-01T08:00Z), "
                                  f"representable in UTC, not {shown(value)}") from None


class DeadLetterFilterSchema(Schema):
    """A dead-letter filter as sent in a replay or discard body (``"filter": {...}``)."""

    class Meta:
        unknown = RAISE

    queue = Text(64)
    kind = Text(32)
    record = Text(64)
    state = Text(16)
    since = Timestamp()
    until = Timestamp()


class AdminQuerySchema(DeadLetterFilterSchema):
    """The query string of ``GET /admin/dead-letters``: a filter and a limit; other parameters are ignored."""

    class Meta:
        unknown = EXCLUDE

    limit = WholeNumber(1, MAX_LIMIT, load_default=DEFAULT_LIMIT)


class Sha256(fields.Field):
    """A SHA-256 as 64 hexadecimal digits, returned in lower case; empty counts as not given."""

    def _deserialize(self, value, attr, data, **kwargs) -> str | None:
        if value == "":
            return None
        if not isinstance(value, str) or not _SHA256.fullmatch(value):
            raise ValidationError(f"must be 64 hexadecimal digits, not {shown(value)}")
        return value.lower()


class ImportQuerySchema(Schema):
    """The query string of ``GET /dailyup/imports``."""

    class Meta:
        unknown = EXCLUDE

    limit = WholeNumber(1, IMPORTS_MAX_LIMIT, load_default=IMPORTS_DEFAULT_LIMIT)
    sha256 = Sha256(load_default=None)


def load_query(schema: Schema, args) -> dict[str, Any]:
    """Load a query string (its first value of each name) through ``schema``; raises ValidationError."""
    return schema.load({name: args.get(name) for name in args if args.get(name) is not None})


def describe(errors: dict[str, Any]) -> str:
    """marshmallow's errors as one line: ``limit must be ...; since must be ...``."""
    parts = []
    for name, messages in errors.items():
        if isinstance(messages, dict):
            parts.append(describe({f"{name} {k}": v for k, v in messages.items()}))
            continue
        for message in messages if isinstance(messages, list) else [messages]:
            parts.append(f"{name} {message}" if name != "_schema" else str(message))
    return "; ".join(parts)
