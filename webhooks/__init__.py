"""The webhook receiver: verify, acknowledge, hand off to RabbitMQ.

Run with ``gunicorn 'webhooks:create_app()'``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from producers.publisher import Publisher
    from syncbridge.config import Settings
    from webhooks.receiver import Check

# The app's modules are imported by create_app, not here: gunicorn's arbiter imports
# this package (for the worker class) before its gevent workers patch the standard library.


def create_app(
    settings: Settings | None = None,
    *,
    publisher: Publisher | None = None,
    checks: dict[str, Check] | None = None,
) -> Flask:
    """Build the receiver app; nothing connects until a request needs the broker."""
    import logging

    from flask import Flask

    from producers.topology import topology_for
    from syncbridge.config import Settings
    from syncbridge.monitoring import init_sentry
    from webhooks import admin, dailyup
    from webhooks.body import BodyGuard
    from webhooks.errors import register_error_handlers
    from webhooks.receiver import EXTENSION, Receiver
    from webhooks.routes import bp

    settings = settings or Settings.from_env()
    if settings.sentry_dsn:
        init_sentry(settings, "web")
    # An injected publisher brings its own topology: publish where it declared.
    topology = getattr(publisher, "topology", None) or topology_for(settings)
    if publisher is None:
        from syncbridge.bootstrap import build_publisher

        publisher = build_publisher(settings, topology)

    if checks is not None:
        given = dict(checks)

        def checks_factory() -> dict[str, Check]:
            return given
    else:

        def checks_factory() -> dict[str, Check]:
            # Imported on the first /readyz, not here: the database check is wired
            # elsewhere, and the receiver must start and queue events without it.
            from syncbridge.bootstrap import web_checks

            return web_checks(settings, publisher)

    if not logging.getLogger().handlers:
        # Under gunicorn nothing else configures logging; the accepted-event lines must show.
        level = logging.getLevelName(settings.log_level.upper())
        logging.basicConfig(
            level=level if isinstance(level, int) else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )

    app = Flask(__name__)
    # No redirects (their pages are HTML): "//" in a path is not merged into "/" but
    # matches nothing (404 JSON), as does a trailing slash (no rule ends with one).
    app.url_map.merge_slashes = False
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    app.extensions[EXTENSION] = Receiver(settings, publisher, topology, checks_factory)
    app.extensions[dailyup.EXTENSION] = dailyup.DailyUpAccess(settings)
    app.register_blueprint(bp)
    app.register_blueprint(dailyup.bp)
    app.register_blueprint(admin.bp)
    register_error_handlers(app)
    app.wsgi_app = BodyGuard(app.wsgi_app, settings.body_read_timeout)
    return app
