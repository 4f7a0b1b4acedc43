"""Every exchange, queue and binding of the service, declared in one place.

::

    {ns}.events  (topic) --crm.#----> {ns}.crm-to-ameise  (quorum; dead letters -> {ns}.dead)
                         --ameise.#-> {ns}.ameise-to-crm  (quorum; dead letters -> {ns}.dead)
    {ns}.dead    (topic) ----#------> {ns}.dead-letters   (quorum)

Routing keys: ``crm.<module>.changed`` for CRM record events,
``ameise.<entity>.<change>`` for the DailyUp deltas of the return path.  A consumer
dead-letters a message itself (with the reason in headers) by publishing it to
``{ns}.dead`` under its original routing key; RabbitMQ does the same through the
queue's dead-letter exchange when a message exceeds the delivery limit.
"""
from __future__ import annotations

from dataclasses import dataclass

from kombu import Exchange, Queue


@dataclass(frozen=True)
class Topology:
    namespace: str
    events: Exchange
    dead: Exchange
    crm_to_ameise: Queue
    ameise_to_crm: Queue
    dead_letters: Queue

    @property
    def queues(self) -> tuple[Queue, ...]:
        return (self.crm_to_ameise, self.ameise_to_crm, self.dead_letters)

    def queue(self, name: str) -> Queue:
        """A work queue by its short name (e.g. "crm-to-ameise")."""
        for queue in self.queues:
            if queue.name == f"{self.namespace}.{name}":
                return queue
        raise KeyError(name)


def crm_record_changed_key(module: str) -> str:
    """Routing key of a CRM record event of ``module``."""
    return f"crm.{module.lower()}.changed"


def ameise_record_changed_key(entity: str, change: str) -> str:
    """Routing key of a DailyUp delta: ``ameise.customer.created`` etc."""
    return f"ameise.{entity}.{change}"


def build_topology(namespace: str = "syncbridge", delivery_limit: int = 20) -> Topology:
    """Describe the topology; nothing is declared until :func:`declare`."""
    events = Exchange(f"{namespace}.events", type="topic", durable=True)
    dead = Exchange(f"{namespace}.dead", type="topic", durable=True)
    quorum = {"x-queue-type": "quorum"}
    work = {**quorum, "x-dead-letter-exchange": dead.name, "x-delivery-limit": delivery_limit}
    crm_to_ameise = Queue(f"{namespace}.crm-to-ameise", exchange=events, routing_key="crm.#", durable=True,
                          queue_arguments=dict(work))
    ameise_to_crm = Queue(f"{namespace}.ameise-to-crm", exchange=events, routing_key="ameise.#", durable=True,
                          queue_arguments=dict(work))
    dead_letters = Queue(
        f"{namespace}.dead-letters",
        exchange=dead,
        routing_key="#",
        durable=True,
        queue_arguments=dict(quorum),
    )
    return Topology(namespace, events, dead, crm_to_ameise, ameise_to_crm, dead_letters)


def declare(connection_or_channel, topology: Topology) -> None:
    """Declare every exchange, queue and binding (idempotent).

    Publishers and consumers both call this on connecting: the dead-letter queue
    must exist before the first dead letter, or RabbitMQ would drop it.
    """
    channel = getattr(connection_or_channel, "default_channel", connection_or_channel)
    for exchange in (topology.events, topology.dead):
        exchange(channel).declare()
    for queue in topology.queues:
        queue(channel).declare()
