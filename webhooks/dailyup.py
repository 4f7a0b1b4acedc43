"""DailyUp over HTTP: upload a delivery, look at the imports, download their tables.

``POST /dailyup/deliveries`` stores the ZIP in the drop folder's inbox (whole, or
not at all) and answers 202; the DailyUp worker imports it on its next look.  The
other routes are the admin API (import status and CSV downloads) for scripts and
the dashboard.
"""
from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context
from marshmallow import ValidationError
from werkzeug.exceptions import BadRequest, NotFound, RequestEntityTooLarge, UnsupportedMediaType

from contracts.admin import ImportQuerySchema, describe, load_query, parse_id, shown
from syncbridge.dailyup.export import chunked, csv_lines
from syncbridge.dailyup.intake import DropFolder, UploadRejected
from syncbridge.deliveries import TABLES
from syncbridge.ports import DailyUpStore
from webhooks.body import allow_slow_body
from webhooks.database import answer_503_when_the_database_is_down
from webhooks.payload import require_secret
from webhooks.receiver import current_receiver

bp = Blueprint("dailyup", __name__)
answer_503_when_the_database_is_down(bp)
_imports_query = ImportQuerySchema()

UPLOAD_TOKEN_HEADER = "X-Upload-Token"
ADMIN_TOKEN_HEADER = "X-Admin-Token"
ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/octet-stream")
EXTENSION = "syncbridge.dailyup"
# The DailyUp store, the drop folder and the reader options, as bootstrap builds them.
DailyUpParts = tuple[DailyUpStore, DropFolder, dict[str, Any]]


def _access():
    return current_app.extensions[EXTENSION].get()


# ---------------------------------------------------------------- upload
@bp.post("/dailyup/deliveries")
def upload_delivery():
    """Store an uploaded delivery in the inbox; 202 once it is there whole."""
    settings = current_receiver().settings
    require_secret(settings.dailyup_upload_token, UPLOAD_TOKEN_HEADER)
    allow_slow_body(request.environ)  # a large delivery may take long; each read still has its timeout
    limit = settings.dailyup_max_upload_bytes
    request.max_content_length = limit  # this route's own limit, not the webhooks' 64 KiB
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise BadRequest("Send the delivery as the multipart field 'file' (curl -F file=@DailyUp_....zip).")
        stream, name = upload.stream, request.args.get("name") or upload.filename or ""
    elif mimetype in ZIP_TYPES:
        stream, name = request.stream, request.args.get("name", "")
    else:
        raise UnsupportedMediaType("Send a ZIP: multipart field 'file', or the raw body as application/zip with ?name=.")
    _, folder, _ = _access()
    try:
        path, sha256, size = folder.save_upload(stream, name, max_bytes=limit, source="upload")
    except UploadRejected as exc:
        if exc.too_large:
            raise RequestEntityTooLarge(str(exc)) from None
        raise BadRequest(str(exc)) from None
    return jsonify({"status": "received", "file": path.name, "sha256": sha256, "bytes": size,
                    "status_url": f"/dailyup/imports?sha256={sha256}"}), 202


# ---------------------------------------------------------------- admin API
@bp.get("/dailyup/imports")
def list_imports():
    """The newest imports, optionally only the one of a file's sha256."""
    require_secret(current_receiver().settings.admin_token, ADMIN_TOKEN_HEADER)
    try:
        query = load_query(_imports_query, request.args)
    except ValidationError as exc:
        bad = BadRequest(describe(exc.messages))
        bad.extra = {"fields": exc.messages}
        raise bad from None
    store, _, _ = _access()
    if query["sha256"]:
        found = store.import_of_file(query["sha256"])
        imports = [found] if found is not None else []
    else:
        imports = store.imports(limit=query["limit"])
    return jsonify({"imports": [_public(i) for i in imports]})


@bp.get("/dailyup/imports/<ref>")
def show_import(ref: str):
    """One import with its first row errors and the links to its tables."""
    require_secret(current_receiver().settings.admin_token, ADMIN_TOKEN_HEADER)
    store, _, _ = _access()
    imp = _find(store, ref)
    errors = store.row_errors(imp.id, limit=100)
    return jsonify({**_public(imp), "row_errors": [dataclasses.asdict(e) for e in errors],
                    "downloads": {t: f"/dailyup/imports/{imp.id}/{t}.csv" for t in (*TABLES, "errors")}})


@bp.get("/dailyup/imports/<ref>/<name>.csv")
def download_table(ref: str, name: str):
    """A table of an import (or its row errors) as spreadsheet-ready CSV, streamed."""
    require_secret(current_receiver().settings.admin_token, ADMIN_TOKEN_HEADER)
    store, folder, options = _access()
    imp = _find(store, ref)
    from syncbridge.dailyup.export import ExportUnavailable, import_table

    try:
        columns, rows = import_table(store, folder, imp, name, options)
    except ExportUnavailable as exc:
        raise NotFound(str(exc)) from None
    body = stream_with_context(chunked(csv_lines(columns, rows)))
    file_name = f"{imp.file_name.removesuffix('.zip')}-{name}.csv"
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{file_name}"'})


def _find(store, ref: str):
    if ref == "latest":
        imp = store.latest_import()
    elif (import_id := parse_id(ref)) is not None:   # ASCII digits within a BIGINT
        imp = store.get_import(import_id)
    else:
        imp = None
    if imp is None:
        raise NotFound(f"No import {shown(ref)}.")
    return imp


def _public(imp) -> dict[str, Any]:
    return {k: _jsonable(v) for k, v in dataclasses.asdict(imp).items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value
