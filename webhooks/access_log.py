"""What the receiver's access log line tells beside the request: the event a webhook queued.

Under gunicorn (``webhooks.gunicorn_config``) each request is one log line: the
access line, which ends with what the request queued (``queued event <id>
module=... record_id=... source=...``, "-" for anything else) instead of a
second line of its own from the app.  The worker marks each request's environ
with ``CARRIED`` when its access line carries that; elsewhere (the Flask test
client, another server) the app logs the event on a line of its own.

Imported by gunicorn's arbiter (through the worker class): it imports nothing.
"""
from __future__ import annotations

# True in a request's environ when the server's access line will carry what it queued.
CARRIED = "syncbridge.access_log"
# What the request queued, for the access line.
QUEUED = "syncbridge.queued"

# The receiver's access line (``webhooks.gunicorn_config``): the path without its query string
# (a webhook's secret may travel as ?token=...), then status, bytes, seconds and what was queued.
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss %({' + QUEUED + '}e)s'
