"""Send a message to the dead letters with everything needed to understand and replay it."""
from __future__ import annotations

from kombu.message import Message

from producers.bodies import received_body
from producers.topology import Topology

# The kinds of dead letter (header x-error-kind) and their headers are the core's vocabulary.
from syncbridge.ports import DeadLetterKind
from syncbridge.ports import dead_letter_headers as _headers


def dead_letter(publisher, topology: Topology, message: Message, *, reason: str, kind: DeadLetterKind) -> None:
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
                       kind: DeadLetterKind) -> None:
    """Send a message that may not go out (it fails its contract) to the dead letters instead."""
    publisher.publish(topology.dead, routing_key, body, message_id=message_id,
                      headers=_headers({}, topology.events.name, routing_key, reason, kind))
