"""gunicorn settings of the receiver: ``gunicorn -c python:webhooks.gunicorn_config 'webhooks:create_app()'``."""
from webhooks.receiver import EXTENSION

# %(U)s is the path without the query string: Zoho webhooks may carry their
# secret as ?token=..., which must never reach a log file.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss'
accesslog = "-"
graceful_timeout = 30


def worker_exit(server, worker):  # noqa: ARG001 - gunicorn hook signature
    """Close the worker's broker connection cleanly instead of dropping it."""
    app = getattr(worker, "wsgi", None)
    receiver = getattr(app, "extensions", {}).get(EXTENSION) if app is not None else None
    if receiver is not None:
        receiver.publisher.close()
