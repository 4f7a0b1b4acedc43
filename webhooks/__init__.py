"""The webhook receiver: verify, acknowledge, hand off to RabbitMQ.

Built by ``syncbridge.bootstrap.web_app`` (gunicorn: ``'syncbridge.bootstrap:web_app()'``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from flask import Flask

    from producers.publisher import Publisher
    from producers.topology import Topology
    from syncbridge.config import Settings
    from syncbridge.handlers.dead_letters import DeadLetterOps
    from webhooks.dailyup import DailyUpParts
    from webhooks.receiver import Check

# The app's modules are imported by create_app, not here: gunicorn's arbiter imports
# this package (for the worker class) before its gevent workers patch the standard library.


def create_app(
    settings: Settings,
    *,
    publisher: Publisher,
    topology: Topology | None = None,
    checks: dict[str, Check] | None = None,
    dead_letters: Callable[[], DeadLetterOps] | None = None,
    dailyup: Callable[[], DailyUpParts] | None = None,
) -> Flask:
    """The receiver app around ready-built parts (``syncbridge.bootstrap.web_app`` builds them).

    ``dead_letters`` and ``dailyup`` build what the admin API and the DailyUp routes
    use, on their first request: the receiver starts and queues events without a
    database.  Without them those routes answer 503.
    """
    import logging

    from flask import Flask

    from syncbridge.monitoring import init_sentry
    from webhooks import admin
    from webhooks import dailyup as dailyup_routes
    from webhooks.body import BodyGuard
    from webhooks.database import OnFirstUse
    from webhooks.direct import DirectWorkflow
    from webhooks.errors import register_error_handlers
    from webhooks.receiver import EXTENSION, Receiver
    from webhooks.routes import bp

    if settings.sentry_dsn:
        init_sentry(settings, "web")
    topology = topology or publisher.topology

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
    receiver = app.extensions[EXTENSION] = Receiver(settings, publisher, topology, dict(checks or {}))
    app.extensions[dailyup_routes.EXTENSION] = OnFirstUse(dailyup, "the DailyUp routes")
    app.extensions[admin.EXTENSION] = OnFirstUse(dead_letters, "the admin API")
    app.register_blueprint(bp)
    app.register_blueprint(dailyup_routes.bp)
    app.register_blueprint(admin.bp)
    register_error_handlers(app)
    # The usual workflow webhook is answered without Flask's dispatch; every other request goes on to Flask.
    app.wsgi_app = BodyGuard(DirectWorkflow(app, app.wsgi_app, receiver), settings.body_read_timeout)
    return app
