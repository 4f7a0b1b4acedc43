"""The audit log (admins only): every operator action with who and when, newest first."""
from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext

from dashboard.auth import requires
from dashboard.pages import NavEntry, Page
from dashboard.parts import parts

bp = Blueprint("audit", __name__, url_prefix="/audit")
page = Page(bp, nav=(NavEntry("audit.index", lazy_gettext("Audit log"), role="admin"),))
PAGE_SIZE = 50


def action_label(action: str) -> str:
    """The translated name of an audited action; an action added later shows as its code until it has one."""
    return {
        "user.created": _("User created"),
        "user.role_changed": _("Role changed"),
        "user.password_set": _("Password set"),
        "user.deleted": _("User deleted"),
        "direction.paused": _("Direction paused"),
        "direction.resumed": _("Direction resumed"),
        "import.reviewed": _("Delivery uploaded and checked"),
        "import.applied": _("Delivery applied"),
        "import.discarded": _("Upload discarded"),
        "import.downloaded": _("Import table downloaded"),
        "dead_letter.replayed": _("Dead letter replayed"),
        "dead_letter.discarded": _("Dead letter discarded"),
        "dead_letter.corrected": _("Dead letter corrected"),
        "dead_letters.bulk_replay": _("Bulk replay started"),
        "dead_letters.bulk_discard": _("Bulk discard started"),
        "dead_letters.bulk_replay_finished": _("Bulk replay finished"),
        "dead_letters.bulk_discard_finished": _("Bulk discard finished"),
        "dead_letters.bulk_cancelled": _("Bulk job cancelled"),
        "issue.acknowledge": _("Issue acknowledged"),
        "issue.resolve": _("Issue resolved"),
        "issue.reopen": _("Issue reopened"),
        "connection.started": _("Connect started"),
        "connection.connected": _("Connected"),
        "connection.failed": _("Connect failed"),
        "events.exported": _("Events exported"),
        "events.view_saved": _("View saved"),
        "events.view_deleted": _("View deleted"),
    }.get(action, action)


@bp.app_context_processor
def labels():
    return {"action_label": action_label}


@bp.get("")
@requires("admin")
def index():
    before = request.args.get("before", type=int)
    entries = parts().operators.audit_entries(before_id=before if before and before > 0 else None,
                                              limit=PAGE_SIZE + 1)
    older = entries[PAGE_SIZE - 1].id if len(entries) > PAGE_SIZE else None
    return render_template("pages/audit/index.html", entries=entries[:PAGE_SIZE], older=older)
