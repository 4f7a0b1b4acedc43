"""Sign-in, sign-out, the signed-in user and the permission rule :func:`requires`.

Every request needs a signed-in user except those to :data:`PUBLIC` endpoints.
A session remembers the user's id together with the time of its last password
change, so setting a new password ends every other session of that user; a role
change counts from the next request on.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from dashboard.parts import parts
from syncbridge.handlers.operators import has_role
from syncbridge.ports import Operator

log = logging.getLogger("syncbridge.dashboard")
bp = Blueprint("auth", __name__)
F = TypeVar("F", bound=Callable[..., Any])

# Endpoints anyone may reach: the sign-in form, the language switch, static files.
PUBLIC = {"auth.login", "i18n.set_language", "static", "metrics.scrape"}  # metrics: a bearer token instead
MAX_FIELD = 1024


class SignedIn(UserMixin):
    """The signed-in operator, as Flask-Login knows it."""

    def __init__(self, operator: Operator) -> None:
        self.operator = operator

    def get_id(self) -> str:
        return f"{self.operator.id}:{self.operator.password_changed_at.timestamp():.6f}"

    @property
    def username(self) -> str:
        return self.operator.username

    @property
    def role(self) -> str:
        return self.operator.role

    def can(self, role: str) -> bool:
        return has_role(self.operator.role, role)


def init_auth(app) -> None:
    manager = LoginManager(app)
    manager.login_view = "auth.login"
    manager.session_protection = "basic"

    @manager.user_loader
    def load(user_id: str) -> SignedIn | None:
        operator_id, _sep, changed = user_id.partition(":")
        if not operator_id.isdigit():
            return None
        operator = parts().operators.get(int(operator_id))
        if operator is None or f"{operator.password_changed_at.timestamp():.6f}" != changed:
            return None
        return SignedIn(operator)

    @manager.unauthorized_handler
    def unauthorized():
        if request.headers.get("HX-Request"):
            # htmx follows no redirect into a page: tell it to load the sign-in page whole.
            response = app.response_class(status=401)
            response.headers["HX-Redirect"] = url_for("auth.login")
            return response
        return redirect(url_for("auth.login", next=_local(request.full_path)))

    @app.before_request
    def require_sign_in():
        if request.endpoint in PUBLIC:       # an unknown path too needs a sign-in: it tells nothing
            return None
        if not current_user.is_authenticated:
            return manager.unauthorized()
        if not session.permanent:       # the idle timeout (PERMANENT_SESSION_LIFETIME) counts from each request
            session.permanent = True
        return None

    @app.context_processor
    def user_context() -> dict[str, Any]:
        return {"current_user": current_user}

    app.register_blueprint(bp)


def requires(role: str) -> Callable[[F], F]:
    """Let only users whose role includes ``role`` (viewer < operator < admin) call the view; others get 403."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                abort(401)
            if not current_user.can(role):
                abort(403)
            return view(*args, **kwargs)

        wrapper.required_role = role  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def actor() -> str:
    """Who acts, as the audit log records it."""
    return str(current_user.username)


def client_address() -> str:
    """The client's address (behind SYNCBRIDGE_DASHBOARD_PROXIES trusted proxies: the forwarded one)."""
    return request.remote_addr or "unknown"


def _local(target: str | None) -> str | None:
    """``target`` if it is a path of this site (no scheme, no host, not protocol-relative), else None."""
    if not target:
        return None
    parts_ = urlsplit(target)
    if parts_.scheme or parts_.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target.rstrip("?") or "/"


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("overview.index"))
    status = 200
    if request.method == "POST":
        username = request.form.get("username", "")[:MAX_FIELD]
        password = request.form.get("password", "")[:MAX_FIELD]
        result = parts().operators.sign_in(username, password, client_address())
        if result.operator is not None:
            target = _local(request.args.get("next")) or url_for("overview.index")
            session.clear()             # a fresh session: nothing from before the sign-in carries over
            login_user(SignedIn(result.operator))
            session.permanent = True
            return redirect(target)
        if result.refused == "limited":
            log.warning("sign-in refused: too many failed attempts (account or client address)")
            flash(_("Too many failed sign-ins. Please wait a few minutes and try again."), "error")
            status = 429
        else:
            log.info("sign-in refused: wrong username or password")
            flash(_("Wrong username or password."), "error")
            status = 401
    return render_template("login.html"), status


@bp.post("/logout")
def logout():
    logout_user()
    session.clear()
    flash(_("You are signed out."), "info")
    return redirect(url_for("auth.login"))
