"""Imports: the DailyUp deliveries with their figures, downloads of their tables, and an upload with its dry run first."""
from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, stream_with_context, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext

from dashboard.auth import actor, requires
from dashboard.pages import NavEntry, Page
from dashboard.parts import parts
from syncbridge.dailyup.export import XLSX_TYPE, chunked, csv_lines, xlsx_chunks
from syncbridge.deliveries import TABLES
from syncbridge.handlers.imports import FORMATS, ImportProblem, ImportsDesk

bp = Blueprint("imports", __name__, url_prefix="/imports")
page = Page(bp, nav=(NavEntry("imports.index", lazy_gettext("Imports")),))
PAGE_SIZE = 50
SHOWN_ERRORS = 100


def desk() -> ImportsDesk:
    found = parts().imports
    if found is None:
        abort(404)
    return found


def state_label(state: str) -> str:
    return {"published": _("published"), "accepted": _("accepted"), "importing": _("importing"),
            "superseded": _("superseded"), "rejected": _("rejected"), "duplicate": _("already imported")}.get(state, state)


def delta_label(kind: str) -> str:
    """``customer.created`` and the like, in words."""
    if kind == "suppressed":
        return _("Our own changes delivered back (not sent again)")
    entity, _sep, change = kind.partition(".")
    entities = {"customer": _("Customers"), "contract": _("Contracts")}
    changes = {"created": _("created"), "changed": _("changed"), "deleted": _("deleted")}
    return f"{entities.get(entity, entity)}: {changes.get(change, change)}"


def problem(exc: ImportProblem) -> str:
    return {
        "upload": lambda: _("This is not a DailyUp delivery: %(reason)s", reason=str(exc)),
        "too_large": lambda: _("The file is too large."),
        "no_review": lambda: _("This upload is no longer waiting (applied or discarded already)."),
        "export": lambda: _("This table cannot be downloaded: %(reason)s", reason=str(exc)),
    }.get(exc.code, lambda: str(exc))()


@bp.app_context_processor
def labels():
    return {"import_state_label": state_label, "delta_label": delta_label}


@bp.get("")
def index():
    return render_template("pages/imports/index.html", imports=desk().imports(limit=PAGE_SIZE))


@bp.get("/<int:import_id>")
def show(import_id: int):
    imp = desk().get(import_id)
    if imp is None:
        abort(404)
    return render_template("pages/imports/show.html", imp=imp, tables=TABLES,
                           row_errors=desk().row_errors(imp.id, limit=SHOWN_ERRORS), shown_errors=SHOWN_ERRORS)


@bp.get("/<int:import_id>/<table>.<fmt>")
@requires("operator")       # whole tables of customers' data: operators only, and every download is audited
def download(import_id: int, table: str, fmt: str):
    imp = desk().get(import_id)
    if imp is None or fmt not in FORMATS or (table != "errors" and table not in TABLES):
        abort(404)
    try:
        columns, rows = desk().export(imp, table, fmt, by=actor())
    except ImportProblem as exc:
        flash(problem(exc), "error")
        return redirect(url_for("imports.show", import_id=import_id), 303)
    file_name = f"{imp.file_name.removesuffix('.zip')}-{table}.{fmt}"
    if fmt == "csv":
        body, mimetype = chunked(csv_lines(columns, rows)), "text/csv"
    else:
        body, mimetype = xlsx_chunks(columns, rows, sheet=table), XLSX_TYPE
    return Response(stream_with_context(body), mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{file_name}"'})


@bp.post("/uploads")
@requires("operator")
def upload():
    board = desk()
    request.max_content_length = board.max_upload_bytes + 1024 * 1024   # the form's other fields beside the file
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash(_("Choose a delivery file (DailyUp_Hauptvermittlernummer_YYYYMMDD.zip)."), "error")
        return redirect(url_for("imports.index"), 303)
    try:
        review = board.review(upload.stream, upload.filename, by=actor())
    except ImportProblem as exc:
        flash(problem(exc), "error")
        return redirect(url_for("imports.index"), 303)
    return redirect(url_for("imports.review", token=review.token), 303)


@bp.get("/uploads/<token>")
@requires("operator")
def review(token: str):
    found = desk().pending_review(token)
    if found is None:
        abort(404)
    return render_template("pages/imports/review.html", review=found)


@bp.post("/uploads/<token>/apply")
@requires("operator")
def apply(token: str):
    try:
        name = desk().apply(token, by=actor())
    except ImportProblem as exc:
        flash(problem(exc), "error")
        return redirect(url_for("imports.index"), 303)
    flash(_("%(file)s is in the inbox: the DailyUp worker imports it within a minute.", file=name), "info")
    return redirect(url_for("imports.index"), 303)


@bp.post("/uploads/<token>/discard")
@requires("operator")
def discard(token: str):
    if desk().discard(token, by=actor()):
        flash(_("The upload is discarded."), "info")
    return redirect(url_for("imports.index"), 303)
