"""Publish CRM record events."""
from __future__ import annotations

from contracts.base import ContractError
from contracts.events import CrmRecordChangedSchema
from producers.publisher import Publisher
from syncbridge.messages import CrmRecordChanged
from syncbridge.topology import Topology, crm_record_changed_key

_schema = CrmRecordChangedSchema()


def publish_crm_record_changed(publisher: Publisher, topology: Topology, event: CrmRecordChanged) -> None:
    """Publish ``event`` on the events exchange; return once the broker confirmed it."""
    body = _schema.dump(event)
    # Check the message against its own contract before it leaves: a consumer must never
    # receive a message it would dead-letter as invalid.
    errors = _schema.validate(body)
    if errors:
        raise ContractError(errors, "CrmRecordChanged does not satisfy its contract")
    publisher.publish(
        topology.events,
        crm_record_changed_key(event.module),
        body,
        message_id=event.event_id,
    )
