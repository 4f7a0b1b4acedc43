"""Issues: dead letters grouped by cause (kind, system, code, field), open -> acknowledged -> resolved.

A resolved issue whose cause dies again reads as open.  An issue shows its dead letters and the
events (activity log) of their records, and replays its dead letters through the bulk plan and job
of the Dead letters page.  The cause is no personal data, so it may be in the URL.
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext

from dashboard.auth import actor, requires
from dashboard.pages import NavEntry, Page
from dashboard.parts import parts
from syncbridge.handlers.dead_letters import parse_filter
from syncbridge.handlers.issues import MOVES, IssueError, issue_state, reopened
from syncbridge.ports import ISSUE_STATES, ActivityEntry

bp = Blueprint("issues", __name__, url_prefix="/issues")
page = Page(bp, nav=(NavEntry("issues.index", lazy_gettext("Issues")),))
LETTERS_SHOWN = 50
RECORDS_FOR_EVENTS = 20
EVENTS_SHOWN = 50


def issue_state_label(state: str) -> str:
    return {"open": _("open"), "acknowledged": _("acknowledged"), "resolved": _("resolved")}.get(state, state)


def move_label(move: str) -> str:
    return {"acknowledge": _("Acknowledge"), "resolve": _("Resolve"), "reopen": _("Reopen")}.get(move, move)


@bp.app_context_processor
def labels():
    return {"issue_state_label": issue_state_label, "issue_state": issue_state, "issue_reopened": reopened,
            "move_label": move_label}


@bp.get("")
def index():
    state = request.args.get("state", "")
    if state and state not in ISSUE_STATES:
        abort(404)
    return render_template("pages/issues/index.html", issues=parts().issues.all(state or None), state=state,
                           states=ISSUE_STATES)


@bp.get("/issue")
def show():
    cause = request.args.get("cause", "")[:255]
    issue = parts().issues.get(cause) if cause else None
    if issue is None:
        abort(404)
    letters = parts().dead_letter_ops.find(parse_filter(cause=cause), limit=LETTERS_SHOWN)
    moves = [move for move, (allowed, _target) in MOVES.items() if issue_state(issue) in allowed]
    return render_template("pages/issues/show.html", issue=issue, letters=letters, events=_events(letters),
                           moves=moves)


@bp.post("/move")
@requires("operator")
def move():
    cause = request.form.get("cause", "")[:255]
    try:
        parts().issues.move(cause, request.form.get("move", ""), by=actor())
    except IssueError as exc:
        if exc.code == "unknown":
            abort(404)
        flash(_("The issue cannot be changed that way now."), "error")
    else:
        flash(_("The issue is %(state)s.", state=issue_state_label(
            MOVES[request.form.get("move", "")][1])), "info")
    return redirect(url_for("issues.show", cause=cause), 303)


def _events(letters) -> list[ActivityEntry]:
    """The activity of the records of an issue's dead letters, newest first."""
    activity = parts().activity
    seen: dict[int | None, ActivityEntry] = {}
    records = {(letter.queue, letter.record) for letter in letters if letter.record}
    for queue, record in sorted(records)[:RECORDS_FOR_EVENTS]:
        key = {"zoho_id": record} if queue == "crm-to-ameise" else {"ameise_id": record}
        for entry in activity.activities(limit=EVENTS_SHOWN, **key):
            seen[entry.id] = entry
    return sorted(seen.values(), key=lambda e: (e.at is not None, e.at, e.id or 0), reverse=True)[:EVENTS_SHOWN]
