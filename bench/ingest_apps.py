"""The two baselines of ``bench/ingest.py``, served by gunicorn with the receiver's own settings.

    gunicorn --config python:webhooks.gunicorn_config 'bench.ingest_apps:noop_app()'
    gunicorn --config python:webhooks.gunicorn_config 'bench.ingest_apps:obvious_app()'

``noop_app``: parses the webhook's JSON body, checks the token and answers 202 with
an event id; nothing is queued (the ceiling of the web stack).

``obvious_app``: what a receiver written the obvious way does: one kombu
connection per worker process in publisher-confirm mode (``confirm_publish``) and,
per request, one ``Producer.publish`` of a persistent message that returns once
the broker confirmed it; 503 when the broker failed.  A kombu connection is not
safe to share between concurrent requests, so publishes take turns (a lock).
It publishes to the same quorum queue topology as the receiver
(``SYNCBRIDGE_NAMESPACE``).
"""
from __future__ import annotations

import os
import threading
import uuid

from flask import Flask, jsonify, request

TOKEN_HEADER = "X-Webhook-Token"


def _token() -> str:
    return os.environ.get("SYNCBRIDGE_ZOHO_WEBHOOK_TOKEN", "")


def noop_app() -> Flask:
    """Parse and answer: the do-nothing endpoint."""
    app = Flask(__name__)
    token = _token()

    @app.post("/webhooks/zoho/<module>")
    def hook(module: str):
        data = request.get_json(silent=True)
        if request.headers.get(TOKEN_HEADER) != token:
            return jsonify({"error": "unauthorized"}), 401
        if not isinstance(data, dict) or "id" not in data:
            return jsonify({"error": "invalid_payload"}), 400
        return jsonify({"event_id": str(uuid.uuid4()), "status": "queued"}), 202

    return app


def obvious_app() -> Flask:
    """One kombu publish per request, waiting for its confirm."""
    from kombu import Connection

    from producers.topology import build_topology, declare

    app = Flask(__name__)
    token = _token()
    topology = build_topology(os.environ.get("SYNCBRIDGE_NAMESPACE", "syncbridge"))
    url = os.environ.get("SYNCBRIDGE_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    lock = threading.Lock()
    state: dict = {}

    def producer():
        if "producer" not in state:
            connection = Connection(url, transport_options={"confirm_publish": True})
            declare(connection, topology)
            state["connection"], state["producer"] = connection, connection.Producer()
        return state["producer"]

    @app.post("/webhooks/zoho/<module>")
    def hook(module: str):
        data = request.get_json(silent=True)
        if request.headers.get(TOKEN_HEADER) != token:
            return jsonify({"error": "unauthorized"}), 401
        if not isinstance(data, dict) or "id" not in data:
            return jsonify({"error": "invalid_payload"}), 400
        event_id = str(uuid.uuid4())
        body = {"event_id": event_id, "module": module, "record_id": str(data["id"]),
                "operation": data.get("operation")}
        routing_key = f"crm.{module.lower()}.changed"
        try:
            with lock:
                # Where the receiver publishes the same event: the comparison is of the publishing alone.
                producer().publish(body, exchange=topology.crm_exchange(routing_key).name, routing_key=routing_key,
                                   serializer="json", delivery_mode=2, message_id=event_id, retry=False)
        except Exception:  # noqa: BLE001 - any broker failure is a 503 here
            connection = state.pop("connection", None)
            state.clear()
            if connection is not None:
                connection.collect()
            return jsonify({"error": "unavailable"}), 503
        return jsonify({"event_id": event_id, "status": "queued"}), 202

    return app
