"""The admin API of the dead letters, for the dashboard: list, show, replay, discard.

Every route needs ``SYNCBRIDGE_ADMIN_TOKEN`` (``X-Admin-Token`` header or Bearer)
before anything else.  The routes only translate HTTP to :mod:`syncbridge.handlers.dead_letters`
and back; a replay or discard names its dead letters by ``ids`` or ``filter``
(or ``"all": true``), and ``"dry_run": true`` tells what would happen.
"""
from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import BadRequest, NotFound
from werkzeug.routing import BaseConverter
from werkzeug.routing import ValidationError as NoMatch

from contracts.admin import (
    MAX_IDS,
    MAX_TEXT,
    AdminQuerySchema,
    DeadLetterFilterSchema,
    bad_text,
    describe,
    load_query,
    parse_id,
)
from syncbridge.handlers.dead_letters import (
    FAILED,
    DeadLetterOps,
    InvalidFilter,
    Selection,
    SelectionError,
    as_json,
    parse_filter,
)
from syncbridge.ports import DeadLetterFilter
from webhooks.dailyup import ADMIN_TOKEN_HEADER
from webhooks.database import answer_503_when_the_database_is_down
from webhooks.payload import require_secret
from webhooks.receiver import current_receiver

bp = Blueprint("admin", __name__)
answer_503_when_the_database_is_down(bp)

EXTENSION = "syncbridge.admin"
FILTERS = ("queue", "kind", "record", "since", "until", "state")
DEFAULT_BY = "admin-api"
MAX_NOTE = 4000
_ACTION_FIELDS = {"ids", "filter", "all", "dry_run", "force", "by"}
_query_schema = AdminQuerySchema()
_filter_schema = DeadLetterFilterSchema()


class InvalidParameters(BadRequest):
    """Parameters that failed their checks; ``fields`` says which and why."""

    def __init__(self, errors: dict) -> None:
        super().__init__(describe(errors))
        self.extra = {"fields": errors}


class DeadLetterIdConverter(BaseConverter):
    """``<dead_letter_id:...>``: ASCII digits within a BIGINT; anything else matches no dead letter (404)."""

    regex = "[0-9]+"

    def to_python(self, value: str) -> int:
        letter_id = parse_id(value)
        if letter_id is None:
            raise NoMatch()
        return letter_id

    def to_url(self, value) -> str:
        return str(value)


@bp.record_once
def _install(state) -> None:
    state.app.url_map.converters["dead_letter_id"] = DeadLetterIdConverter


def _ops() -> DeadLetterOps:
    return current_app.extensions[EXTENSION].get()


@bp.before_request
def _authenticate() -> None:
    require_secret(current_receiver().settings.admin_token, ADMIN_TOKEN_HEADER)


# ---------------------------------------------------------------- routes
@bp.get("/admin/status")
def status():
    """The state of each connection ("active", "reconnect_needed" with why, "not_connected") and the dead letters."""
    ops = _ops()
    connections = {}
    for provider in ("zoho", "ameise"):
        state, detail = ops.activity.tokens.status(provider)
        connections[provider] = {"state": state, "detail": detail}
    dead = ops.letters.count(DeadLetterFilter(state="dead"))
    return jsonify({"connections": connections, "dead_letters": dead})


@bp.get("/admin/dead-letters")
def list_dead_letters():
    """The dead letters matching the query's filters, newest first."""
    try:
        query = load_query(_query_schema, request.args)
    except ValidationError as exc:
        raise InvalidParameters(exc.messages) from None
    limit = query.pop("limit")
    flt = _parsed(query)
    ops = _ops()
    letters = ops.find(flt, limit=limit)
    return jsonify({"dead_letters": [as_json(letter) for letter in letters], "count": len(letters),
                    "total": ops.letters.count(flt)})


@bp.get("/admin/dead-letters/<dead_letter_id:letter_id>")
def show_dead_letter(letter_id: int):
    """One dead letter with its headers and body."""
    letter = _ops().get(letter_id)
    if letter is None:
        raise NotFound(f"No dead letter {letter_id}.")
    return jsonify(as_json(letter, full=True))


@bp.post("/admin/dead-letters/replay")
def replay_dead_letters():
    """Publish dead letters again (checked against their current contract); or say what would happen."""
    data = _action(allowed=_ACTION_FIELDS)
    outcomes = _ops().replay(_selection(data), by=_by(data), force=_flag(data, "force"),
                             dry_run=_flag(data, "dry_run"))
    return _answer(outcomes, _flag(data, "dry_run"))


@bp.post("/admin/dead-letters/discard")
def discard_dead_letters():
    """Mark dead letters discarded, with an optional note; or say what would happen."""
    data = _action(allowed=_ACTION_FIELDS | {"note"})
    note = data.get("note")
    if note is not None and not isinstance(note, str):
        raise BadRequest("note must be a string")
    if note is not None and len(note) > MAX_NOTE:
        raise BadRequest(f"note must be at most {MAX_NOTE} characters")
    if note is not None and (problem := bad_text(note, lines=True)):
        raise BadRequest(f"note {problem}")
    outcomes = _ops().discard(_selection(data), by=_by(data), note=note or None, force=_flag(data, "force"),
                              dry_run=_flag(data, "dry_run"))
    return _answer(outcomes, _flag(data, "dry_run"))


# ---------------------------------------------------------------- helpers
def _parsed(values: dict[str, Any]) -> DeadLetterFilter:
    """A filter from values its schema checked (strings, UTC times)."""
    try:
        return parse_filter(**values)
    except InvalidFilter as exc:
        raise BadRequest(str(exc)) from None


def _action(*, allowed: set[str]) -> dict[str, Any]:
    data = _json_body()
    if not isinstance(data, dict):
        raise BadRequest('Send a JSON object, e.g. {"ids": [1, 2]} or {"filter": {"kind": "rejected"}, "dry_run": true}.')
    # A misspelt "dry_run" must not turn a dry run into a real one.
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")
    return data


def _json_body() -> Any:
    """The body as JSON, whatever its bytes: anything that is not JSON (too deep, not UTF-8, ...) is None."""
    body = request.get_data(cache=True)   # 413 above MAX_CONTENT_LENGTH
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, too many digits; too deep
        return None


def _selection(data: dict[str, Any]) -> Selection:
    ids = data.get("ids") or []
    if not isinstance(ids, list) or not all(parse_id(i) == i and isinstance(i, int) for i in ids):
        raise BadRequest("ids must be a list of dead-letter ids (whole numbers from 1 to 2^63-1)")
    if len(ids) > MAX_IDS:
        raise BadRequest(f"ids: at most {MAX_IDS} per call")
    raw = data.get("filter") or {}
    if not isinstance(raw, dict):
        raise BadRequest("filter must be an object")
    unknown = sorted(set(raw) - set(FILTERS))
    if unknown:
        raise BadRequest(f"unknown filter(s) {', '.join(unknown)}; known: {', '.join(FILTERS)}")
    try:
        values = _filter_schema.load(raw)
    except ValidationError as exc:
        raise InvalidParameters({"filter": exc.messages}) from None
    try:
        return Selection(tuple(ids), _parsed(values), _flag(data, "all"))
    except SelectionError as exc:
        raise BadRequest(str(exc)) from None


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false")
    return value


def _by(data: dict[str, Any]) -> str:
    by = data.get("by", DEFAULT_BY)
    if not isinstance(by, str) or not by.strip() or len(by) > MAX_TEXT:
        raise BadRequest(f"by must name who acts (a non-empty string of at most {MAX_TEXT} characters)")
    if problem := bad_text(by):
        raise BadRequest(f"by {problem}")
    return by.strip()


def _answer(outcomes, dry_run: bool):
    counts = Counter(outcome.status for outcome in outcomes)
    body = {"dry_run": dry_run, "counts": dict(counts), "results": [dataclasses.asdict(o) for o in outcomes]}
    # The broker did not confirm: what was done is in the results, the rest can be sent again later.
    return jsonify(body), 503 if counts[FAILED] else 200
