"""Send a message to the dead letters with everything needed to understand and replay it."""
from __future__ import annotations

from datetime import UTC, datetime

from kombu.message import Message

from producers.bodies import received_body
from producers.topology import Topology

# Kinds of dead letter (header x-error-kind).
CONTRACT = "contract"        # the message failed its contract
UNDECODABLE = "undecodable"  # not JSON, or a content type we never accept
REJECTED = "rejected"        # Zoho/Ameise or our own rules refused the record
ERROR = "error"              # an unexpected error of ours; replay after the fix
UNAVAILABLE = "unavailable"  # the system stayed unavailable through every retry

MAX_REASON = 2000


def dead_letter(publisher, topology: Topology, message: Message, *, reason: str, kind: str) -> None:
    """Publish ``message`` unchanged to the dead-letter exchange, the reason in its headers.

    Raises the publisher's error when the broker did not confirm; the caller then
    must not ack, so the message is redelivered rather than lost.
    """
    info = message.delivery_info or {}
    publisher.publish(
        topology.dead,
        info.get("routing_key") or "unknown",
        received_body(message),
        message_id=(message.properties or {}).get("message_id") or "",
        headers=_headers(message.headers, info.get("exchange") or "", info.get("routing_key") or "unknown",
                         reason, kind),
        content_type=message.content_type or "application/octet-stream",
        content_encoding=message.content_encoding,
    )


def dead_letter_unsent(publisher, topology: Topology, routing_key: str, body: dict, *, message_id: str, reason: str,
                       kind: str) -> None:
    """Send a message that may not go out (it fails its contract) to the dead letters instead."""
    publisher.publish(topology.dead, routing_key, body, message_id=message_id,
                      headers=_headers({}, topology.events.name, routing_key, reason, kind))


def _headers(headers, exchange: str, routing_key: str, reason: str, kind: str) -> dict:
    headers = dict(headers or {})
    now = datetime.now(UTC).isoformat()
    reason = reason[:MAX_REASON]
    headers.update({
        "x-original-exchange": exchange,
        "x-original-routing-key": routing_key,
        "x-error-kind": kind,
        "x-error": reason,
        "x-first-error": headers.get("x-first-error") or reason,
        "x-first-failed-at": headers.get("x-first-failed-at") or now,
        "x-dead-lettered-at": now,
        "x-attempts": int(headers.get("x-attempts") or 0) + 1,
    })
    return headers
