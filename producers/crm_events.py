"""Publish CRM record events."""
from __future__ import annotations

from collections.abc import Sequence

from contracts.events import crm_record_changed_body
from producers.publisher import Publisher
from producers.topology import Topology
from syncbridge.messages import CrmRecordChanged, crm_record_changed_key


def publish_crm_record_changed(publisher: Publisher, topology: Topology, event: CrmRecordChanged) -> None:
    """Publish ``event`` (to the direct exchange if its module is synced); return once the broker confirmed it."""
    routing_key = crm_record_changed_key(event.module)
    publisher.publish(
        topology.crm_exchange(routing_key),
        routing_key,
        _body(event),
        message_id=event.event_id,
    )


def publish_crm_records_changed(publisher: Publisher, topology: Topology, events: Sequence[CrmRecordChanged]) -> None:
    """Publish ``events`` in one confirmed batch; return once the broker confirmed every one.

    One window for the whole batch: the broker's acks are awaited once, not once per event
    (a Notification API callback may name thousands of records).  On failure
    BrokerUnavailable tells how many of the first events were confirmed.
    """
    messages = [(crm_record_changed_key(event.module), _body(event), event.event_id) for event in events]
    if messages:
        publisher.publish_many(topology.crm_exchange(*(key for key, _, _ in messages)), messages,
                               window=len(messages))


def _body(event: CrmRecordChanged) -> dict:
    # Checked against its own contract before it leaves: a consumer must never
    # receive a message it would dead-letter as invalid.
    return crm_record_changed_body(event)
