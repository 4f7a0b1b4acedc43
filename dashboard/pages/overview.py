"""Overview: is each direction running (and if not, why), the connections, queues, dead letters, last import."""
from __future__ import annotations

import re

from babel.numbers import format_percent
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import get_locale, lazy_gettext
from flask_babel import gettext as _

from dashboard.auth import actor, requires
from dashboard.pages import NavEntry, Page
from dashboard.parts import parts
from syncbridge.handlers.overview import DIRECTIONS, overview, pause_direction, resume_direction

bp = Blueprint("overview", __name__)
page = Page(bp, nav=(NavEntry("overview.index", lazy_gettext("Overview")),))
MAX_REASON = 500


@bp.app_template_filter("share")
def share(value: float) -> str:
    """A share as a percentage with one decimal in the reader's language (``91.4%``, ``91,4 %``)."""
    locale = get_locale()
    pattern = locale.percent_formats[None].pattern if locale is not None else "#,##0%"
    return format_percent(value, format=re.sub(r"0(?!.*0)", "0.0", pattern, count=1), locale=locale or "en")


@bp.get("/")
def index():
    data = overview(parts().overview_sources)
    template = "pages/overview/_panels.html" if request.headers.get("HX-Request") else "pages/overview/index.html"
    return render_template(template, overview=data)


@bp.post("/directions/<direction>/pause")
@requires("operator")
def pause(direction: str):
    if direction not in DIRECTIONS:
        abort(404)
    reason = request.form.get("reason", "").strip()[:MAX_REASON]
    pause_direction(parts().operators.store, direction, by=actor(), reason=reason)
    flash(_("The direction is paused: its worker stops taking messages within seconds; they wait in the queue."),
          "info")
    return redirect(url_for("overview.index"), 303)


@bp.post("/directions/<direction>/resume")
@requires("operator")
def resume(direction: str):
    if direction not in DIRECTIONS:
        abort(404)
    if resume_direction(parts().operators.store, direction, by=actor()):
        flash(_("The direction runs again."), "info")
    return redirect(url_for("overview.index"), 303)
