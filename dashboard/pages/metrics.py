"""``/metrics`` for Prometheus: no sign-in, a bearer token instead (``SYNCBRIDGE_METRICS_TOKEN``).

The counts of the receiver's and the workers' processes (prometheus_client's
multiprocess mode, ``syncbridge.metrics``) and the queue depths of now.  A wrong
or missing token answers 401 without a body that says more.
"""
from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, request

from dashboard.pages import Page
from dashboard.parts import parts
from dashboard.security import csrf

bp = Blueprint("metrics", __name__)
page = Page(bp)


@bp.get("/metrics")
@csrf.exempt
def scrape():
    expose = parts().metrics
    if expose is None:
        abort(404)
    expected = current_app.config["SYNCBRIDGE_SETTINGS"].metrics_token
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        return Response("unauthorized\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"', "Content-Type": "text/plain"})
    body, content_type = expose()
    return Response(body, 200, {"Content-Type": content_type, "Cache-Control": "no-store"})
