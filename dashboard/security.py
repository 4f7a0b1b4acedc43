"""The dashboard's protections: session cookie, CSRF on every form and htmx request, security headers."""
from __future__ import annotations

from datetime import timedelta

from flask import request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from syncbridge.config import Settings

# No inline script or style anywhere: htmx's indicator styles are switched off (htmx-config in layout.html).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
SESSION_COOKIE = "syncbridge_dashboard"
# Sent by requests a page makes by itself (htmx polling): they are not the user's activity.
BACKGROUND_HEADER = "X-Dashboard-Background"
csrf = CSRFProtect()


class IdleTimeoutSessions(SecureCookieSessionInterface):
    """Each request of the user renews the session's lifetime; a page refreshing itself does not."""

    def should_set_cookie(self, app, session) -> bool:
        if request.headers.get(BACKGROUND_HEADER):
            return bool(session.modified)
        return super().should_set_cookie(app, session)


def init_security(app, settings: Settings) -> None:
    app.config.update(
        SECRET_KEY=settings.dashboard_secret_key,
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.production,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.dashboard_session_minutes),
        SESSION_REFRESH_EACH_REQUEST=True,
        REMEMBER_COOKIE_DURATION=timedelta(seconds=0),     # no "remember me": a sign-in ends with its session
        WTF_CSRF_TIME_LIMIT=None,                           # a token lives as long as its session
        WTF_CSRF_SSL_STRICT=True,
    )
    if settings.dashboard_proxies:
        n = settings.dashboard_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)
    app.session_interface = IdleTimeoutSessions()
    csrf.init_app(app)

    @app.after_request
    def headers(response):
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if settings.production:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if response.mimetype == "text/html":
            # Pages may show personal data: never kept by a shared cache or the browser's back-forward cache.
            response.headers["Cache-Control"] = "no-store"
        return response
