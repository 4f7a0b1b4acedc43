"""The admin API of the dead letters, for the dashboard: list, show, replay, discard.

Every route needs ``SYNCBRIDGE_ADMIN_TOKEN`` (``X-Admin-Token`` header or Bearer)
before anything else.  The routes only translate HTTP to :mod:`syncbridge.dlq`
and back; a replay or discard names its dead letters by ``ids`` or ``filter``
(or ``"all": true``), and ``"dry_run": true`` tells what would happen.
"""
from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import BadRequest, NotFound

from store.dead_letters import DeadLetterFilter
from syncbridge.dlq import FAILED, DeadLetterOps, InvalidFilter, Selection, SelectionError, as_json, parse_filter
from webhooks.dailyup import ADMIN_TOKEN_HEADER
from webhooks.payload import require_secret
from webhooks.receiver import current_receiver

bp = Blueprint("admin", __name__)

EXTENSION = "syncbridge.admin"
FILTERS = ("queue", "kind", "record", "since", "until", "state")
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
DEFAULT_BY = "admin-api"
_ACTION_FIELDS = {"ids", "filter", "all", "dry_run", "force", "by"}


class AdminAccess:
    """The dead-letter operations of one app, built on first use (the receiver starts without a database)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ops: DeadLetterOps | None = None

    def get(self) -> DeadLetterOps:
        with self._lock:
            if self._ops is None:
                from store.dead_letters import SqlDeadLetterStore
                from syncbridge.bootstrap import build_store

                receiver = current_receiver()
                store = build_store(receiver.settings)
                self._ops = DeadLetterOps(SqlDeadLetterStore(store.engine), store, publisher=receiver.publisher,
                                          topology=receiver.topology)
            return self._ops


@bp.record_once
def _install(state) -> None:
    state.app.extensions[EXTENSION] = AdminAccess()


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
    flt = _filter({name: request.args.get(name) for name in FILTERS})
    raw = request.args.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}, not {raw!r}")
    ops = _ops()
    letters = ops.find(flt, limit=int(raw))
    return jsonify({"dead_letters": [as_json(letter) for letter in letters], "count": len(letters),
                    "total": ops.letters.count(flt)})


@bp.get("/admin/dead-letters/<int:letter_id>")
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
    outcomes = _ops().discard(_selection(data), by=_by(data), note=note or None, force=_flag(data, "force"),
                              dry_run=_flag(data, "dry_run"))
    return _answer(outcomes, _flag(data, "dry_run"))


# ---------------------------------------------------------------- helpers
def _filter(values: dict[str, Any]) -> DeadLetterFilter:
    for name, value in values.items():
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"filter {name} must be a string")
    try:
        return parse_filter(**values)
    except InvalidFilter as exc:
        raise BadRequest(str(exc)) from None


def _action(*, allowed: set[str]) -> dict[str, Any]:
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise BadRequest('Send a JSON object, e.g. {"ids": [1, 2]} or {"filter": {"kind": "rejected"}, "dry_run": true}.')
    # A misspelt "dry_run" must not turn a dry run into a real one.
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")
    return data


def _selection(data: dict[str, Any]) -> Selection:
    ids = data.get("ids") or []
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids):
        raise BadRequest("ids must be a list of dead-letter ids (positive whole numbers)")
    raw = data.get("filter") or {}
    if not isinstance(raw, dict):
        raise BadRequest("filter must be an object")
    unknown = sorted(set(raw) - set(FILTERS))
    if unknown:
        raise BadRequest(f"unknown filter(s) {', '.join(unknown)}; known: {', '.join(FILTERS)}")
    try:
        return Selection(tuple(ids), _filter(raw), _flag(data, "all"))
    except SelectionError as exc:
        raise BadRequest(str(exc)) from None


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false")
    return value


def _by(data: dict[str, Any]) -> str:
    by = data.get("by", DEFAULT_BY)
    if not isinstance(by, str) or not by.strip() or len(by) > 255:
        raise BadRequest("by must name who acts (a non-empty string of at most 255 characters)")
    return by.strip()


def _answer(outcomes, dry_run: bool):
    counts = Counter(outcome.status for outcome in outcomes)
    body = {"dry_run": dry_run, "counts": dict(counts), "results": [dataclasses.asdict(o) for o in outcomes]}
    # The broker did not confirm: what was done is in the results, the rest can be sent again later.
    return jsonify(body), 503 if counts[FAILED] else 200
