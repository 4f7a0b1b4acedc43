"""Events: every attempt at a message, newest first, with filters, saved views, its detail and CSV; a record's timeline.

The filter lives in the session, not the URL (a record number or free text
may point at a person); a page's URL carries only the keyset cursor (a time
and an entry id).  Exports and changes of saved views go to the audit log.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext

from dashboard.auth import actor
from dashboard.pages import NavEntry, Page
from dashboard.parts import parts
from syncbridge.handlers.events import (
    EventSources,
    ameise_link,
    decode_cursor,
    encode_cursor,
    event_detail,
    event_page,
    export_events,
    record_timeline,
    zoho_link,
)
from syncbridge.ports import AMEISE_TO_CRM, CRM_TO_AMEISE, AuditEntry, DeadLetterKind, EventFilter

bp = Blueprint("events", __name__, url_prefix="/events")
page = Page(bp, nav=(NavEntry("events.index", lazy_gettext("Events")),))

SESSION_KEY = "events_filter"
FIELDS = ("since", "until", "direction", "entity", "result", "error_kind", "record", "q")
MAX_FIELD = 200
MAX_VIEW_NAME = 100
LOCAL = ZoneInfo("Europe/Berlin")
ENTITIES = ("customer", "contract")
ERROR_KINDS = (DeadLetterKind.REJECTED.value, DeadLetterKind.UNAVAILABLE.value, "reconnect_needed",
               DeadLetterKind.ERROR.value)


def sources() -> EventSources:
    found = parts().events
    if found is None:
        abort(404)
    return found


# ---------------------------------------------------------------- labels
# Translated when shown (one gettext per label shown, not per table of labels).
DIRECTIONS = {CRM_TO_AMEISE.value: lazy_gettext("CRM → Ameise"), AMEISE_TO_CRM.value: lazy_gettext("Ameise → CRM"),
              "system": lazy_gettext("System")}
ENTITY_LABELS = {"customer": lazy_gettext("Customer"), "contract": lazy_gettext("Contract")}
RESULTS = {"ok": lazy_gettext("Succeeded"), "error": lazy_gettext("Failed")}
ERROR_KIND_LABELS = {"rejected": lazy_gettext("Rejected"), "unavailable": lazy_gettext("Unavailable"),
                     "reconnect_needed": lazy_gettext("Reconnect needed"), "error": lazy_gettext("Error of ours"),
                     "contract-violation": lazy_gettext("Contract violated"),
                     "undecodable": lazy_gettext("Undecodable")}
ACTIONS = {"created": lazy_gettext("Created"), "updated": lazy_gettext("Updated"),
           "written_back": lazy_gettext("Number written back"), "skipped": lazy_gettext("Skipped"),
           "duplicate": lazy_gettext("Duplicate"), "coalesced": lazy_gettext("Covered by a later sync"),
           "failed": lazy_gettext("Failed"), "retry": lazy_gettext("Retry scheduled"),
           "waiting": lazy_gettext("Waiting for reconnect"), "dead_lettered": lazy_gettext("Dead-lettered"),
           "marked": lazy_gettext("Marked"), "deleted": lazy_gettext("Deleted")}


def _label(labels: dict[str, Any], value: str | None) -> str:
    """The translated label of ``value``; a value without one shows as it is."""
    found = labels.get(value or "")
    return str(found) if found is not None else (value or "—")


def direction_label(value: str | None) -> str:
    return _label(DIRECTIONS, value)


def entity_label(value: str | None) -> str:
    return _label(ENTITY_LABELS, value)


def result_label(value: str | None) -> str:
    return _label(RESULTS, value)


def error_kind_label(value: str | None) -> str:
    return _label(ERROR_KIND_LABELS, value)


def action_label(value: str | None) -> str:
    return _label(ACTIONS, value)


@bp.app_context_processor
def labels() -> dict[str, Any]:
    return {"event_direction_label": direction_label, "event_entity_label": entity_label, "result_label": result_label,
            "error_kind_label": error_kind_label, "event_action_label": action_label}


@bp.app_template_filter("event_json")
def event_json(value: Any) -> str:
    """A message or body as indented JSON, umlauts as they are (escaped as text by the template)."""
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)


# ---------------------------------------------------------------- the filter
def _clean(form: Any) -> dict[str, str]:
    """The filter fields of a form, trimmed; unknown choices dropped."""
    values = {name: str(form.get(name, "")).strip()[:MAX_FIELD] for name in FIELDS}
    choices = {"direction": (CRM_TO_AMEISE.value, AMEISE_TO_CRM.value), "entity": ENTITIES,
               "result": ("ok", "error"), "error_kind": ERROR_KINDS}
    for name, allowed in choices.items():
        if values[name] not in allowed:
            values[name] = ""
    for name in ("since", "until"):
        if values[name] and _local_time(values[name]) is None:
            values[name] = ""
    return {name: value for name, value in values.items() if value}


def _local_time(text: str) -> datetime | None:
    """A ``datetime-local`` value (Europe/Berlin) as an aware time; None if it is none."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value.replace(tzinfo=LOCAL) if value.tzinfo is None else value


def to_filter(values: dict[str, str]) -> EventFilter:
    return EventFilter(
        since=_local_time(values["since"]) if values.get("since") else None,
        until=_local_time(values["until"]) if values.get("until") else None,
        direction=values.get("direction") or None, entity=values.get("entity") or None,
        result=values.get("result") or None, error_kind=values.get("error_kind") or None,
        record=values.get("record") or None, text=values.get("q") or None)


def current_values() -> dict[str, str]:
    stored = session.get(SESSION_KEY)
    return _clean(stored) if isinstance(stored, dict) else {}


def _audit(action: str, target: str = "", **details: Any) -> None:
    parts().operators.store.audit(AuditEntry(actor=actor(), action=action, target=target, details=details))


# ---------------------------------------------------------------- the list
@bp.get("")
def index():
    src = sources()
    values = current_values()
    after = decode_cursor(request.args.get("after"))
    result = event_page(src.log, to_filter(values), after)
    return render_template(
        "pages/events/index.html", entries=result.entries, values=values,
        next_url=url_for("events.index", after=encode_cursor(result.next_cursor)) if result.next_cursor else None,
        first_url=url_for("events.index") if after else None, views=src.views.views(actor()),
        choices={"direction": [(CRM_TO_AMEISE.value, direction_label(CRM_TO_AMEISE.value)),
                               (AMEISE_TO_CRM.value, direction_label(AMEISE_TO_CRM.value))],
                 "entity": [(e, entity_label(e)) for e in ENTITIES],
                 "result": [("ok", result_label("ok")), ("error", result_label("error"))],
                 "error_kind": [(k, error_kind_label(k)) for k in ERROR_KINDS]})


@bp.post("")
def set_filter():
    if request.form.get("reset"):
        session.pop(SESSION_KEY, None)
    else:
        session[SESSION_KEY] = _clean(request.form)
    return redirect(url_for("events.index"), 303)


@bp.get("/export.csv")
def export():
    values = current_values()
    _audit("events.exported", details_fields=sorted(values))
    stamp = datetime.now(LOCAL).strftime("%Y-%m-%d_%H%M")
    return Response(export_events(sources().log, to_filter(values)), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="events_{stamp}.csv"'})


# ---------------------------------------------------------------- saved views
@bp.post("/views")
def save_view():
    name = request.form.get("name", "").strip()[:MAX_VIEW_NAME]
    if not name:
        flash(_("Please give the view a name."), "error")
        return redirect(url_for("events.index"), 303)
    sources().views.save_view(actor(), name, current_values())
    _audit("events.view_saved", name)
    flash(_("View “%(name)s” saved.", name=name), "info")
    return redirect(url_for("events.index"), 303)


@bp.post("/views/<int:view_id>/apply")
def apply_view(view_id: int):
    view = next((v for v in sources().views.views(actor()) if v.id == view_id), None)
    if view is None:
        abort(404)
    session[SESSION_KEY] = _clean(view.query)
    return redirect(url_for("events.index"), 303)


@bp.post("/views/<int:view_id>/delete")
def delete_view(view_id: int):
    if not sources().views.delete_view(actor(), view_id):
        abort(404)
    _audit("events.view_deleted", str(view_id))
    flash(_("View deleted."), "info")
    return redirect(url_for("events.index"), 303)


# ---------------------------------------------------------------- one event
@bp.get("/<int:entry_id>")
def detail(entry_id: int):
    src = sources()
    found = event_detail(src.log, entry_id)
    if found is None:
        abort(404)
    return render_template("pages/events/detail.html", detail=found)


# ---------------------------------------------------------------- a record's timeline
@bp.get("/timeline/<entity>/<record>")
def timeline(entity: str, record: str):
    if entity not in ENTITIES or not record or len(record) > MAX_FIELD:
        abort(404)
    src = sources()
    found = record_timeline(src.log, src.store, entity, record)
    link = found.link
    zoho_module = link.zoho_module if link else next((e.zoho_module for e in found.entries if e.zoho_module), None)
    zoho_id = link.zoho_id if link else next((e.zoho_id for e in found.entries if e.zoho_id), None)
    ameise_id = link.ameise_id if link else next((e.ameise_id for e in found.entries if e.ameise_id), None)
    return render_template(
        "pages/events/timeline.html", timeline=found, record=record, zoho_id=zoho_id, ameise_id=ameise_id,
        zoho_url=zoho_link(src.zoho_accounts_url, zoho_module, zoho_id) if zoho_module and zoho_id else None,
        ameise_url=ameise_link(src.ameise_portal_url, entity, ameise_id) if ameise_id else None)
