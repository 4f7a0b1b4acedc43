"""A simulated system's web page of one record, where a deep link of the dashboard lands.

The real Zoho CRM and Ameise portal show a record behind their own sign-in; the
simulators show its fields as a plain table, so a deep link followed in the demo
opens something real.
"""
from __future__ import annotations

import html
import json
from typing import Any

from flask import Response


def record_page(system: str, title: str, record: dict[str, Any] | None, status: int = 200) -> Response:
    """The record's fields as an HTML table (nested values as JSON), or a "not found" page."""
    if record is None:
        heading, rows, status = f"{title}: not found", "", 404
    else:
        heading = title
        rows = "".join(
            f"<tr><th scope=\"row\">{html.escape(str(name))}</th><td>{html.escape(_text(value))}</td></tr>"
            for name, value in record.items())
    body = ("<!DOCTYPE html>\n<html lang=\"de\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(heading)} · {html.escape(system)}</title></head>\n"
            f"<body><p>{html.escape(system)} (simulator)</p><h1>{html.escape(heading)}</h1>"
            + (f"<table>{rows}</table>" if rows else "") + "</body></html>\n")
    return Response(body, status=status, content_type="text/html; charset=utf-8")


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)
