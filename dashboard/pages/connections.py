"""Connections: connect and reconnect Zoho CRM and Ameise by OAuth consent; their status, scopes, expiry and settings.

The consent runs in the operator's browser: ``connect`` sends it to the
system's authorize URL with a fresh ``state`` (and a PKCE challenge where the
server takes one), the system sends it back to ``callback``, which accepts the
``state`` of this browser's session once.  No token and no secret setting is
ever shown.
"""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext

from dashboard.auth import actor, requires
from dashboard.pages import NavEntry, Page
from dashboard.parts import parts
from dashboard.security import CSP
from syncbridge.handlers.connections import (
    PROVIDERS,
    ConnectionSources,
    ConnectRefused,
    PendingConnect,
    connection_details,
    finish_connect,
    settings_shown,
    start_connect,
)

log = logging.getLogger("syncbridge.dashboard")
bp = Blueprint("connections", __name__, url_prefix="/connections")
page = Page(bp, nav=(NavEntry("connections.index", lazy_gettext("Connections")),))
PENDING = "connect_pending"
MAX_PARAM = 2048
SETTING_PREFIXES = {"zoho": ("SYNCBRIDGE_ZOHO_",), "ameise": ("SYNCBRIDGE_AMEISE_",)}


def _sources() -> ConnectionSources:
    sources = parts().connections
    if sources is None:
        abort(404)
    return sources


def _origin(url: str) -> str:
    split = urlsplit(url)
    return f"{split.scheme}://{split.netloc}"


@bp.get("")
def index():
    sources = _sources()
    response = render_template(
        "pages/connections/index.html",
        connections=connection_details(sources.tokens, sources.connectors),
        settings={p: settings_shown(sources.settings, SETTING_PREFIXES[p]) for p in PROVIDERS},
        general=settings_shown(sources.settings, ("SYNCBRIDGE_PUBLIC_URL", "SYNCBRIDGE_DASHBOARD_URL",
                                                   "SYNCBRIDGE_ALLOW_HTTP_OAUTH", "SYNCBRIDGE_TOKEN_")),
    )
    # A connect form redirects to the authorization servers: form-action must name them (Chrome checks redirects).
    origins = sorted({_origin(c.authorization_url("x")) for c in sources.connectors.values()})
    csp = CSP.replace("form-action 'self'", "form-action 'self' " + " ".join(origins))
    return response, 200, {"Content-Security-Policy": csp}


@bp.post("/<provider>/connect")
@requires("operator")
def connect(provider: str):
    sources = _sources()
    if provider not in sources.connectors:
        abort(404)
    url, pending = start_connect(sources.connectors, sources.operators, provider, by=actor(),
                                 clock=sources.clock, now=sources.now)
    session[PENDING] = pending.to_dict()
    log.info("connect of %s started by %s", provider, actor())
    return redirect(url, 303)


@bp.get("/<provider>/callback")
@requires("operator")
def callback(provider: str):
    sources = _sources()
    if provider not in sources.connectors:
        abort(404)
    pending = PendingConnect.from_dict(session.pop(PENDING, None))   # a state is good for one callback
    args = request.args
    try:
        outcome = finish_connect(
            sources.connectors, sources.operators, pending, provider,
            state=args.get("state", "")[:MAX_PARAM], code=args.get("code", "")[:MAX_PARAM],
            error=" ".join(filter(None, (args.get("error", ""), args.get("error_description", ""))))[:MAX_PARAM],
            by=actor(), clock=sources.clock, now=sources.now,
        )
    except ConnectRefused as exc:
        log.warning("connect callback of %s refused: %s", provider, exc)
        flash(_("This answer does not belong to a connect started here (or it was used already). "
                "Nothing was changed; please start the connect again."), "error")
        return redirect(url_for("connections.index"), 303)
    name = {"zoho": "Zoho CRM", "ameise": "Ameise"}[provider]
    if outcome.connected:
        flash(_("%(system)s is connected.", system=name), "info")
    else:
        flash(_("%(system)s was not connected: %(why)s", system=name, why=outcome.detail), "error")
    return redirect(url_for("connections.index"), 303)
