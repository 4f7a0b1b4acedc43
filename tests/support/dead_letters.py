"""Dead letters as the archiver receives them, and the bodies they carry."""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from syncbridge.handlers.dead_letters import (
    ArrivedMessage,
)
from tests.support.queues import (
    ROUTING_KEY,
)

KUNDENNUMMER = "5001234567"


def delta_body(key: str = KUNDENNUMMER, **overrides) -> dict:
    return {"schema_version": 1, "delta_id": f"7:customer:{key}", "import_id": 7, "delivered_on": "2026-11-02",
            "entity": "customer", "change": "changed", "key": key, "changed_fields": ["Ort"], **overrides}


def ours(routing_key: str, body: dict | bytes, *, kind: str = "rejected", at: datetime | None = None,
         namespace: str = "syncbridge", **headers) -> ArrivedMessage:
    """A dead letter as consumers.dead_letters publishes it."""
    at = at or datetime.now(UTC)
    return ArrivedMessage(routing_key, body if isinstance(body, bytes) else json.dumps(body).encode(),
                          "application/json", str(uuid.uuid4()), {
                              "x-error-kind": kind, "x-error": f"{kind} reason", "x-first-error": f"first {kind}",
                              "x-original-exchange": f"{namespace}.events", "x-original-routing-key": routing_key,
                              "x-attempts": 1, "x-dead-lettered-at": at.isoformat(),
                              "x-first-failed-at": at.isoformat(), **headers})


def by_rabbitmq(namespace: str, body: dict, *, at: datetime, reason: str = "delivery_limit", **headers) -> ArrivedMessage:
    """A dead letter as RabbitMQ dead-letters it from a work queue (its x-death headers)."""
    death = {"count": 1, "reason": reason, "queue": f"{namespace}.crm-to-ameise", "time": at.replace(tzinfo=None),
             "exchange": f"{namespace}.events", "routing-keys": [ROUTING_KEY]}
    return ArrivedMessage(ROUTING_KEY, json.dumps(body).encode(), "application/json", body["event_id"], {
        "x-death": [death], "x-first-death-reason": reason, "x-first-death-queue": f"{namespace}.crm-to-ameise",
        "x-first-death-exchange": f"{namespace}.events", "x-delivery-count": 2, **headers})
