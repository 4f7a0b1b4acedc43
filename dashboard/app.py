"""Build the dashboard's Flask app around the parts bootstrap made."""
from __future__ import annotations

import importlib
import logging

from flask import Flask, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from dashboard import auth, i18n, security
from dashboard.pages import PAGES, NavEntry, Page
from dashboard.parts import EXTENSION, DashboardParts
from syncbridge.config import Settings

log = logging.getLogger("syncbridge.dashboard")


def create_app(settings: Settings, parts: DashboardParts) -> Flask:
    """The dashboard app: security, languages, sign-in, then every page area of :data:`dashboard.pages.PAGES`."""
    app = Flask(__name__)
    app.extensions[EXTENSION] = parts
    app.config["SYNCBRIDGE_SETTINGS"] = settings
    security.init_security(app, settings)
    i18n.init_i18n(app)
    auth.init_auth(app)

    nav: list[NavEntry] = []
    for name in PAGES:
        page: Page = importlib.import_module(name).page
        app.register_blueprint(page.blueprint)
        nav.extend(page.nav)
    app.config["DASHBOARD_NAV"] = tuple(nav)

    @app.context_processor
    def navigation():
        user = auth.current_user
        entries = [entry for entry in nav if user.is_authenticated and user.can(entry.role)]
        return {"nav": entries, "active_blueprint": request.blueprint}

    _register_error_pages(app)
    return app


def _register_error_pages(app: Flask) -> None:
    titles = {
        400: lambda: _("The request could not be understood."),
        401: lambda: _("Please sign in."),
        403: lambda: _("You do not have permission for this page or action."),
        404: lambda: _("This page does not exist."),
        405: lambda: _("This page does not accept that request."),
        413: lambda: _("The request is too large."),
        429: lambda: _("Too many requests. Please wait a moment."),
    }

    @app.errorhandler(CSRFError)
    def csrf_refused(exc: CSRFError):
        log.info("request refused: %s", exc.description)
        message = _("The form has expired or did not come from this site. Please reload the page and try again.")
        return render_template("error.html", code=400, message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = exc.code or 500
        if code == 401:
            return app.login_manager.unauthorized()  # type: ignore[attr-defined]
        message = titles.get(code, lambda: _("Something went wrong."))()
        return render_template("error.html", code=code, message=message), code

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("dashboard error on %s %s", request.method, request.path)
        return render_template("error.html", code=500,
                               message=_("Something went wrong on our side. The error has been logged.")), 500
