"""Dead letters: list with filters, a message in full, replay / discard / correct one, and bulk actions as jobs.

The filter is posted (record ids and free text are personal data: never in a URL) and kept in the
session.  A bulk action acts on every match of the filter: it shows its plan first, then runs as a
job in a thread of this dashboard process; the job's state, progress and cancel flag are in the
database, so a reloaded page (or another gunicorn worker) shows it.  A job whose process ended
reads as interrupted after two minutes without progress.
"""
from __future__ import annotations

import json
import logging
import threading
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext

from dashboard.auth import actor, requires
from dashboard.pages import NavEntry, Page
from dashboard.parts import parts
from syncbridge.handlers.dead_letters import KINDS, QUEUES, InvalidFilter, Selection, body_view, parse_filter
from syncbridge.handlers.issues import ACTIONS, FILTER_FIELDS, bulk_filter, filter_params
from syncbridge.ports import DEAD, STATES, DeadLetter

log = logging.getLogger("syncbridge.dashboard")
bp = Blueprint("dead_letters", __name__, url_prefix="/dead-letters")
page = Page(bp, nav=(NavEntry("dead_letters.index", lazy_gettext("Dead letters")),))
PAGE_SIZE = 50
SESSION_KEY = "dead_letter_filter"
MAX_BODY = 256 * 1024           # a corrected body
MAX_NOTE = 500
LIST_FIELDS = (*FILTER_FIELDS, "state")


def state_label(state: str) -> str:
    return {"dead": _("dead"), "replayed": _("replayed"), "discarded": _("discarded")}.get(state, state)


def outcome_label(status: str) -> str:
    return {"replayed": _("replayed"), "discarded": _("discarded"), "would_replay": _("would be replayed"),
            "would_discard": _("would be discarded"), "refused": _("refused"), "not_found": _("not found"),
            "failed": _("failed")}.get(status, status)


def job_state_label(state: str) -> str:
    return {"queued": _("queued"), "running": _("running"), "done": _("done"), "cancelled": _("cancelled"),
            "failed": _("failed"), "interrupted": _("interrupted")}.get(state, state)


def action_name(action: str) -> str:
    return {"replay": _("Replay"), "discard": _("Discard")}.get(action, action)


def filter_label(name: str) -> str:
    return {"queue": _("Queue"), "kind": _("Kind"), "record": _("Record"), "since": _("From (date or time, UTC)"),
            "until": _("Until (date or time, UTC)"), "text": _("Text in the error, record or routing key"),
            "cause": _("Cause"), "state": _("State")}.get(name, name)


@bp.app_context_processor
def labels():
    return {"dl_state_label": state_label, "dl_outcome_label": outcome_label, "job_state_label": job_state_label,
            "bulk_action_name": action_name, "filter_label": filter_label}


def shown_body(body: bytes) -> dict[str, Any]:
    """A body for the page: pretty JSON, else text, else base64; autoescaped by the template."""
    view = body_view(body)
    if "body" in view:
        return {"form": "json", "text": json.dumps(view["body"], indent=2, ensure_ascii=False, sort_keys=True)}
    if "body_text" in view:
        return {"form": "text", "text": view["body_text"]}
    return {"form": "base64", "text": view["body_base64"]}


def current_filter() -> dict[str, str]:
    """The filter kept in the session (state defaults to dead)."""
    kept = session.get(SESSION_KEY)
    if not isinstance(kept, dict):
        return {"state": DEAD}
    return {name: str(kept[name]) for name in LIST_FIELDS if isinstance(kept.get(name), str)}


@bp.get("")
def index():
    params = current_filter()
    try:
        flt = parse_filter(**params)
    except InvalidFilter as exc:
        flash(_("The filter cannot be used: %(problem)s", problem=str(exc)), "error")
        session.pop(SESSION_KEY, None)
        params, flt = {"state": DEAD}, parse_filter(state=DEAD)
    ops = parts().dead_letter_ops
    letters = ops.find(flt, limit=PAGE_SIZE)
    total = ops.letters.count(flt)
    every = [("", _("all"))]
    return render_template("pages/dead_letters/index.html", letters=letters, total=total, params=params,
                           queue_options=every + [(q, q) for q in QUEUES],
                           kind_options=every + [(str(k), str(k)) for k in KINDS],
                           state_options=every + [(s, state_label(s)) for s in STATES],
                           jobs=parts().bulk_jobs.recent(5))


@bp.post("/filter")
def set_filter():
    """Keep the posted filter in the session (never in the URL: record ids and free text may be personal)."""
    form = request.form
    if form.get("reset"):
        session.pop(SESSION_KEY, None)
        return redirect(url_for("dead_letters.index"), 303)
    params = {name: form.get(name, "").strip()[:255] for name in LIST_FIELDS if form.get(name, "").strip()}
    try:
        parse_filter(**params)
    except InvalidFilter as exc:
        flash(_("The filter cannot be used: %(problem)s", problem=str(exc)), "error")
        return redirect(url_for("dead_letters.index"), 303)
    session[SESSION_KEY] = params
    return redirect(url_for("dead_letters.index"), 303)


@bp.get("/<int:letter_id>")
def show(letter_id: int):
    letter = _letter(letter_id)
    corrected = shown_body(letter.corrected_body) if letter.corrected_body is not None else None
    return render_template("pages/dead_letters/show.html", letter=letter, body=shown_body(letter.body),
                           corrected=corrected, edit=shown_body(letter.replay_body)["text"],
                           headers=json.dumps(letter.headers, indent=2, ensure_ascii=False, sort_keys=True))


@bp.post("/<int:letter_id>/replay")
@requires("operator")
def replay(letter_id: int):
    letter = _letter(letter_id)
    outcome = parts().dead_letter_ops.replay(Selection(ids=(letter_id,)), by=actor(),
                                             force=request.form.get("force") == "1")[0]
    parts().operators.record(actor(), "dead_letter.replayed", f"dead letter {letter_id}", outcome=outcome.status,
                             corrected=letter.corrected_body is not None, reason=outcome.reason)
    _flash_outcome(outcome.status, outcome.reason)
    return redirect(url_for("dead_letters.show", letter_id=letter_id), 303)


@bp.post("/<int:letter_id>/discard")
@requires("operator")
def discard(letter_id: int):
    _letter(letter_id)
    note = request.form.get("note", "").strip()[:MAX_NOTE] or None
    outcome = parts().dead_letter_ops.discard(Selection(ids=(letter_id,)), by=actor(), note=note,
                                              force=request.form.get("force") == "1")[0]
    parts().operators.record(actor(), "dead_letter.discarded", f"dead letter {letter_id}", outcome=outcome.status,
                             note=note, reason=outcome.reason)
    _flash_outcome(outcome.status, outcome.reason)
    return redirect(url_for("dead_letters.show", letter_id=letter_id), 303)


@bp.post("/<int:letter_id>/correct")
@requires("operator")
def correct(letter_id: int):
    """Keep a corrected body (checked against the contract); the original stays, both go to the audit log."""
    letter = _letter(letter_id)
    text = request.form.get("body", "")
    if len(text.encode("utf-8")) > MAX_BODY:
        flash(_("The corrected message is too large."), "error")
        return redirect(url_for("dead_letters.show", letter_id=letter_id), 303)
    try:
        body = json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except ValueError as exc:
        flash(_("The corrected message is not JSON: %(problem)s", problem=str(exc)), "error")
        return _show_again(letter, text)
    updated, problem = parts().dead_letter_ops.correct(letter_id, body, by=actor())
    if problem:
        flash(_("The correction was not kept: %(problem)s", problem=problem), "error")
        return _show_again(letter, text)
    parts().operators.record(actor(), "dead_letter.corrected", f"dead letter {letter_id}",
                             original=body_view(letter.replay_body), corrected=body_view(body))
    flash(_("The correction is kept and passes the contract. Replay the message to publish it."), "info")
    return redirect(url_for("dead_letters.show", letter_id=letter_id), 303)


# ---------------------------------------------------------------- bulk: plan, job, progress, cancel
@bp.post("/plan")
@requires("operator")
def plan():
    """What a bulk action would do with every match of the filter (the list's, or an issue's cause)."""
    action = request.form.get("action", "")
    if action not in ACTIONS:
        abort(400)
    params = filter_params(request.form) if request.form.get("cause") else filter_params(current_filter())
    try:
        bulk_filter(params)
    except InvalidFilter as exc:
        flash(_("The filter cannot be used: %(problem)s", problem=str(exc)), "error")
        return redirect(url_for("dead_letters.index"), 303)
    return render_template("pages/dead_letters/plan.html", plan=parts().bulk_jobs.plan(action, params))


@bp.post("/jobs")
@requires("operator")
def start_job():
    action = request.form.get("action", "")
    if action not in ACTIONS:
        abort(400)
    params = filter_params(request.form)
    try:
        job = parts().bulk_jobs.start(action, params, by=actor())
    except InvalidFilter:
        abort(400)
    bulk = parts().bulk_jobs
    threading.Thread(target=bulk.run, args=(job.id,), name=f"dashboard-job-{job.id}", daemon=True).start()
    return redirect(url_for("dead_letters.job", job_id=job.id), 303)


@bp.get("/jobs/<int:job_id>")
def job(job_id: int):
    found = parts().bulk_jobs.job(job_id)
    if found is None:
        abort(404)
    template = "pages/dead_letters/_job.html" if request.headers.get("HX-Request") else "pages/dead_letters/job.html"
    return render_template(template, job=found)


@bp.post("/jobs/<int:job_id>/cancel")
@requires("operator")
def cancel_job(job_id: int):
    if parts().bulk_jobs.job(job_id) is None:
        abort(404)
    if parts().bulk_jobs.cancel(job_id, by=actor()):
        flash(_("The job stops after the message it is at."), "info")
    return redirect(url_for("dead_letters.job", job_id=job_id), 303)


def _letter(letter_id: int) -> DeadLetter:
    letter = parts().dead_letter_ops.get(letter_id)
    if letter is None:
        abort(404)
    return letter


def _show_again(letter: DeadLetter, text: str):
    corrected = shown_body(letter.corrected_body) if letter.corrected_body is not None else None
    return render_template("pages/dead_letters/show.html", letter=letter, body=shown_body(letter.body),
                           corrected=corrected, edit=text,
                           headers=json.dumps(letter.headers, indent=2, ensure_ascii=False, sort_keys=True)), 400


def _flash_outcome(status: str, reason: str | None) -> None:
    if status in ("replayed", "discarded"):
        flash(_("Done: %(outcome)s.", outcome=outcome_label(status)), "info")
    else:
        flash(_("Not done (%(outcome)s): %(reason)s", outcome=outcome_label(status), reason=reason or ""), "error")

