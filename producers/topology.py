"""Every exchange, queue and binding of the service, declared in one place.

::

    {ns}.events  (topic) --crm.#----> {ns}.crm-to-ameise  (quorum; dead letters -> {ns}.dead)
                         --ameise.#-> {ns}.ameise-to-crm  (quorum; dead letters -> {ns}.dead)
    {ns}.crm-changes (direct) --crm.<synced module>.changed--> {ns}.crm-to-ameise
    {ns}.deltas  (direct) --ameise.deltas, ameise.<entity>.<change>--> {ns}.ameise-to-crm
    {ns}.dead    (topic) ----#------> {ns}.dead-letters   (quorum)
    {ns}.retry.<n>s (topic) --#-----> {ns}.retry.<n>s     (quorum, message TTL n s; expired -> {ns}.events)

Routing keys: ``crm.<module>.changed`` for CRM record events,
``ameise.<entity>.<change>`` for one DailyUp delta of the return path, ``ameise.deltas``
for up to 100 of them in one message.

The DailyUp outbox publishes its deltas, 100 to a message, to ``{ns}.deltas``, a direct
exchange bound to ``{ns}.ameise-to-crm`` for ``ameise.deltas`` and for each routing key
of a single delta: RabbitMQ's CPU per message bounds a bulk publish, and a direct
exchange routes for about two thirds of the topic exchange's CPU.  A delta of such a
message that is retried or dead-lettered travels alone under its own routing key;
retries and replays come back through ``{ns}.events``, as every other message's do.

For the same reason the receiver and the sweep publish the event of a record of a
synced module (``SYNCBRIDGE_ZOHO_MODULES``) to ``{ns}.crm-changes``, a direct exchange
bound to ``{ns}.crm-to-ameise`` for each such module's routing key: every webhook is
one message, and RabbitMQ's CPU per message is shared with the receiver on the same
cores.  An event of any other module (the worker refuses it, as it always did) goes
to ``{ns}.events``, whose ``crm.#`` binding routes every CRM event; so does a retry
or a replay.  :meth:`Topology.crm_exchange` says which.

Delayed retries use RabbitMQ itself: a message that met an unavailable system is
published, under its original routing key, to the retry queue of its next delay
(``SYNCBRIDGE_RETRY_DELAYS``); when its TTL runs out RabbitMQ dead-letters it
(at least once) back to ``{ns}.events`` and so to its work queue.  A consumer
dead-letters a message itself (with the reason in headers) by publishing it to
``{ns}.dead`` under its original routing key; RabbitMQ does the same through the
queue's dead-letter exchange when a message exceeds the delivery limit.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kombu import Exchange, Queue

from syncbridge.messages import (
    AMEISE_DELTAS_KEY,
    CHANGES,
    ENTITIES,
    ameise_record_changed_key,
    crm_record_changed_key,
)

# Every routing key of DailyUp deltas: several in one message, and each one a single delta's
# (the contract allows these entities and changes, no other).
DELTA_KEYS = (AMEISE_DELTAS_KEY,
              *(ameise_record_changed_key(entity, change) for entity in ENTITIES for change in CHANGES))


# The CRM modules synced when SYNCBRIDGE_ZOHO_MODULES does not say otherwise.
DEFAULT_CRM_MODULES = ("Contacts", "Accounts", "Deals")


@dataclass(frozen=True)
class Topology:
    namespace: str
    events: Exchange
    dead: Exchange
    deltas: Exchange        # the DailyUp outbox publishes its deltas here (direct)
    crm_changes: Exchange   # the receiver and the sweep publish events of synced modules here (direct)
    crm_to_ameise: Queue
    ameise_to_crm: Queue
    dead_letters: Queue
    retries: tuple[tuple[float, Exchange, Queue], ...] = ()   # (delay in seconds, exchange, queue), ascending
    crm_change_keys: frozenset[str] = frozenset()   # the routing keys crm_changes is bound for

    @property
    def queues(self) -> tuple[Queue, ...]:
        return (self.crm_to_ameise, self.ameise_to_crm, self.dead_letters, *(queue for _, _, queue in self.retries))

    @property
    def exchanges(self) -> tuple[Exchange, ...]:
        return (self.events, self.dead, self.deltas, self.crm_changes,
                *(exchange for _, exchange, _ in self.retries))

    def crm_exchange(self, *routing_keys: str) -> Exchange:
        """Where CRM record events of these routing keys are published: the direct exchange if it is bound for each."""
        return self.crm_changes if routing_keys and self.crm_change_keys.issuperset(routing_keys) else self.events

    @property
    def retry_delays(self) -> tuple[float, ...]:
        return tuple(delay for delay, _, _ in self.retries)

    def retry_exchange(self, delay: float) -> Exchange:
        """The exchange of the retry queue with this delay."""
        for seconds, exchange, _ in self.retries:
            if seconds == delay:
                return exchange
        raise KeyError(delay)

    def queue(self, name: str) -> Queue:
        """A work queue by its short name (e.g. "crm-to-ameise")."""
        for queue in self.queues:
            if queue.name == f"{self.namespace}.{name}":
                return queue
        raise KeyError(name)


def build_topology(namespace: str = "syncbridge", delivery_limit: int = 20,
                   retry_delays: tuple[float, ...] = (10, 60, 600, 3600),
                   crm_modules: Iterable[str] = DEFAULT_CRM_MODULES) -> Topology:
    """Describe the topology; nothing is declared until :func:`declare`.

    ``crm_modules``: the synced CRM modules, whose events go through the direct exchange.
    """
    events = Exchange(f"{namespace}.events", type="topic", durable=True)
    dead = Exchange(f"{namespace}.dead", type="topic", durable=True)
    deltas = Exchange(f"{namespace}.deltas", type="direct", durable=True)
    crm_changes = Exchange(f"{namespace}.crm-changes", type="direct", durable=True)
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
    retries = []
    for delay in retry_delays:
        exchange = Exchange(f"{namespace}.retry.{delay:g}s", type="topic", durable=True)
        queue = Queue(exchange.name, exchange=exchange, routing_key="#", durable=True, queue_arguments={
            **quorum,
            "x-message-ttl": round(delay * 1000),
            "x-dead-letter-exchange": events.name,       # keeps the message's original routing key
            # Moved back at least once, never dropped on the way (needs reject-publish overflow).
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        })
        retries.append((delay, exchange, queue))
    return Topology(namespace, events, dead, deltas, crm_changes, crm_to_ameise, ameise_to_crm, dead_letters,
                    tuple(retries), frozenset(crm_record_changed_key(module) for module in crm_modules))


def declare(connection_or_channel, topology: Topology) -> None:
    """Declare every exchange, queue and binding (idempotent).

    Publishers and consumers both call this on connecting: the dead-letter queue
    must exist before the first dead letter, or RabbitMQ would drop it.
    """
    channel = getattr(connection_or_channel, "default_channel", connection_or_channel)
    for exchange in topology.exchanges:
        exchange(channel).declare()
    for queue in topology.queues:
        queue(channel).declare()
    for key in DELTA_KEYS:
        channel.queue_bind(topology.ameise_to_crm.name, topology.deltas.name, key)
    for key in sorted(topology.crm_change_keys):
        channel.queue_bind(topology.crm_to_ameise.name, topology.crm_changes.name, key)


def topology_for(settings) -> Topology:
    """The topology the settings describe (namespace, delivery limit, retry delays, synced CRM modules)."""
    return build_topology(settings.namespace, settings.delivery_limit, settings.retry_delays,
                          tuple(settings.zoho_modules))
