"""Users (admins only): create, change role, set a password, delete; every change is in the audit log."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext

from dashboard.auth import MAX_FIELD, actor, requires
from dashboard.pages import NavEntry, Page
from dashboard.parts import parts
from syncbridge.handlers.operators import OperatorError
from syncbridge.ports import ROLES

bp = Blueprint("users", __name__, url_prefix="/users")
page = Page(bp, nav=(NavEntry("users.index", lazy_gettext("Users"), role="admin"),))


def role_label(role: str) -> str:
    return {"viewer": _("Viewer"), "operator": _("Operator"), "admin": _("Admin")}.get(role, role)


def problem(exc: OperatorError) -> str:
    """The translated text of a refused change."""
    texts = {
        "bad_username": lambda: _("A username has 1 to 64 letters, digits or . _ @ - and starts with a letter or "
                                  "digit."),
        "exists": lambda: _("User %(username)s exists already.", username=exc.params.get("username", "")),
        "last_admin": lambda: _("%(username)s is the last admin. Make another user admin first.",
                                username=exc.params.get("username", "")),
        "unknown": lambda: _("There is no such user."),
        "bad_role": lambda: _("Choose one of the roles."),
        "short_password": lambda: _("A password has at least %(min)s characters.", min=exc.params.get("min", "")),
        "long_password": lambda: _("A password has at most %(max)s characters.", max=exc.params.get("max", "")),
    }
    return texts.get(exc.code, lambda: str(exc))()


@bp.app_context_processor
def roles():
    return {"roles": ROLES, "role_label": role_label}


@bp.get("")
@requires("admin")
def index():
    return render_template("pages/users/index.html", users=parts().operators.operators())


@bp.post("")
@requires("admin")
def create():
    form = request.form
    try:
        user = parts().operators.create(form.get("username", "")[:MAX_FIELD], form.get("password", "")[:MAX_FIELD],
                                        form.get("role", ""), by=actor())
    except OperatorError as exc:
        flash(problem(exc), "error")
        return render_template("pages/users/index.html", users=parts().operators.operators(), form=form), 400
    flash(_("User %(username)s created.", username=user.username), "info")
    return redirect(url_for("users.index"), 303)


@bp.post("/<int:user_id>/role")
@requires("admin")
def set_role(user_id: int):
    return _change(user_id, lambda name: parts().operators.set_role(name, request.form.get("role", ""), by=actor()),
                   _("Role changed."))


@bp.post("/<int:user_id>/password")
@requires("admin")
def set_password(user_id: int):
    password = request.form.get("password", "")[:MAX_FIELD]
    return _change(user_id, lambda name: parts().operators.set_password(name, password, by=actor()),
                   _("Password set."))


@bp.post("/<int:user_id>/delete")
@requires("admin")
def delete(user_id: int):
    return _change(user_id, lambda name: parts().operators.delete(name, by=actor()), _("User deleted."))


def _change(user_id: int, change, done: str):
    user = parts().operators.get(user_id)
    if user is None:
        abort(404)
    try:
        change(user.username)
    except OperatorError as exc:
        flash(problem(exc), "error")
        return redirect(url_for("users.index"), 303)
    flash(done, "info")
    return redirect(url_for("users.index"), 303)
