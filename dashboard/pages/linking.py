"""Linking: the proposals of first-time linking, for a person to accept or reject.

`syncbridge link propose` computes them (it reads every CRM record, which takes a
while); this page lists them by status with their score and reasons.  Viewers may
look; operators accept one pair, reject one, or accept every certain pair at once.
Accepting stores the link and writes the Kundennummer / Vertragsnummer to the CRM
record; every decision goes to the audit log.  Only proposal ids are in URLs.
"""
from __future__ import annotations

import re

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext

from dashboard.auth import actor, requires
from dashboard.pages import NavEntry, Page
from dashboard.parts import parts
from syncbridge.errors import SyncError
from syncbridge.handlers.linking import LinkingError
from syncbridge.ports import OPEN_PROPOSAL_STATES, PROPOSAL_STATES

bp = Blueprint("linking", __name__, url_prefix="/linking")
page = Page(bp, nav=(NavEntry("linking.index", lazy_gettext("Linking")),))
SHOWN = 200
MAX_ID_DIGITS = 18          # a proposal id fits a 64-bit integer: longer "ids" are refused, not sent to the database


def proposal_status_label(status: str) -> str:
    return {"certain": _("certain"), "proposed": _("proposed"), "ambiguous": _("ambiguous"),
            "accepted": _("accepted"), "rejected": _("rejected"), "superseded": _("superseded")}.get(status, status)


def _evidence_names() -> dict[str, str]:
    return {"e-mail": _("e-mail"), "name": _("name"), "last name": _("last name"), "first name": _("first name"),
            "company name": _("company name"), "birth date": _("birth date"), "PLZ": _("PLZ"),
            "policy number": _("policy number"), "insurer": _("insurer"), "Kundennummer": "Kundennummer",
            "Vertragsnummer": "Vertragsnummer"}


_REASON = re.compile(r"(?P<what>[A-Za-z -]+?) (?:(?P<equal>equal)|(?P<differs>differs)|similar) ?(?:\((?P<share>\d+)%\))?$")


def _reason_part(part: str) -> str:
    names = _evidence_names()
    if found := re.fullmatch(r"shared by (\d+) customers", part):
        return _("shared by %(count)s customers", count=found.group(1))
    if found := re.fullmatch(r"the CRM record also fits (\d+) other customer\(s\)", part):
        return _("the CRM record also fits %(count)s other customer(s)", count=found.group(1))
    if found := re.fullmatch(r"(\d+) CRM candidates", part):
        return _("%(count)s CRM candidates", count=found.group(1))
    if part == "insurer unknown on one side":
        return _("insurer unknown on one side")
    found = _REASON.fullmatch(part)
    if not found or found.group("what") not in names:
        return part
    what, share = names[found.group("what")], found.group("share")
    if found.group("equal"):
        return _("%(what)s equal", what=what)
    if found.group("differs"):
        return _("%(what)s differs (%(share)s %%)", what=what, share=share) if share else \
            _("%(what)s differs", what=what)
    return _("%(what)s similar (%(share)s %%)", what=what, share=share)


def reason_label(reason: str) -> str:
    """A reason of a proposal as the core words it (English, fixed phrases), in the page's language."""
    return ", ".join(_reason_part(part) for part in reason.split(", "))


@bp.app_context_processor
def labels():
    return {"proposal_status_label": proposal_status_label, "proposal_reason_label": reason_label}


def _linking():
    linking = parts().linking
    if linking is None:
        abort(404)
    return linking


@bp.get("")
def index():
    linking = _linking()
    status = request.args.get("status", "")
    if status and status not in PROPOSAL_STATES:
        abort(404)
    after = request.args.get("after", "0")
    if not after.isdigit() or len(after) > MAX_ID_DIGITS:
        abort(404)
    found = linking.proposals.proposals(statuses=(status,) if status else OPEN_PROPOSAL_STATES,
                                        after_id=int(after), limit=SHOWN + 1)
    more = len(found) > SHOWN
    return render_template("pages/linking/index.html", proposals=found[:SHOWN], more=more, status=status,
                           statuses=PROPOSAL_STATES, run=linking.proposals.last_run(),
                           counts=linking.proposals.count_proposals())


def _back():
    status = request.form.get("status", "")
    return redirect(url_for("linking.index", status=status if status in PROPOSAL_STATES else None), 303)


def _proposal_id() -> int:
    raw = request.form.get("id", "")
    if not raw.isdigit() or len(raw) > MAX_ID_DIGITS:
        abort(400)
    return int(raw)


@bp.post("/accept")
@requires("operator")
def accept():
    linking, proposal_id = _linking(), _proposal_id()
    try:
        proposal = linking.accept(proposal_id, actor())
    except LinkingError as exc:
        flash(_("Not accepted: %(reason)s", reason=str(exc)), "error")
    except SyncError as exc:
        flash(_("Not accepted: %(reason)s", reason=exc.describe()), "error")
    else:
        parts().operators.record(actor(), "link.accept", str(proposal_id), entity=proposal.entity,
                                 zoho_module=proposal.zoho_module)
        flash(_("Linked; the number was written to the CRM record."), "info")
    return _back()


@bp.post("/reject")
@requires("operator")
def reject():
    linking, proposal_id = _linking(), _proposal_id()
    try:
        linking.reject(proposal_id, actor())
    except LinkingError as exc:
        flash(_("Not rejected: %(reason)s", reason=str(exc)), "error")
    else:
        parts().operators.record(actor(), "link.reject", str(proposal_id))
        flash(_("Rejected; nothing was written."), "info")
    return _back()


@bp.post("/accept-certain")
@requires("operator")
def accept_certain():
    linking = _linking()
    try:
        accepted, errors = linking.accept_certain(actor())
    except SyncError as exc:
        flash(_("Not accepted: %(reason)s", reason=exc.describe()), "error")
        return _back()
    parts().operators.record(actor(), "link.accept_certain", "", accepted=accepted, failed=len(errors))
    flash(_("%(count)d certain pairs linked.", count=accepted), "info")
    for error in errors[:10]:
        flash(_("Not accepted: %(reason)s", reason=error), "error")
    return _back()
