"""gunicorn settings of the receiver: ``gunicorn -c python:webhooks.gunicorn_config 'syncbridge.bootstrap:web_app()'``.

gevent workers: a client that sends its headers and then waits holds a greenlet,
not one of a few threads, so slow clients cannot starve the receiver; the app
ends each body read after ``SYNCBRIDGE_BODY_READ_TIMEOUT`` (408).  Errors gunicorn
answers itself are JSON (``JsonGeventWorker``); no log line carries a query string.

Loaded by gunicorn's arbiter before the workers patch the standard library for
gevent, so it imports nothing of the app.
"""
from webhooks.access_log import ACCESS_LOG_FORMAT

worker_class = "webhooks.gunicorn_worker.JsonGeventWorker"
logger_class = "webhooks.gunicorn_worker.ScrubbingLogger"
# Connections one worker serves at once (each a greenlet); more wait in the listen backlog.
worker_connections = 1000
# The path without its query string (Zoho webhooks may carry their secret as
# ?token=..., which must never reach a log file), and as its last field the event
# the request queued ("-" if none): one line per request, not two.
access_log_format = ACCESS_LOG_FORMAT
accesslog = "-"
graceful_timeout = 30


def worker_exit(server, worker):  # noqa: ARG001 - gunicorn hook signature
    """Close the worker's broker connection cleanly instead of dropping it."""
    from webhooks.receiver import EXTENSION

    app = getattr(worker, "wsgi", None)
    receiver = getattr(app, "extensions", {}).get(EXTENSION) if app is not None else None
    if receiver is not None:
        receiver.publisher.close()
