"""How many messages wait in each work queue and the dead-letter queue, for the dashboard's Overview.

A passive queue declare answers with the queue's message count (ready, not yet
acknowledged) and changes nothing; it works on RabbitMQ and on the in-process
broker alike.  The age of the oldest message is not known this way (a quorum
queue reports none at all): the Overview bounds it from the activity log.
"""
from __future__ import annotations

from collections.abc import Callable

from kombu import Connection
from kombu.exceptions import OperationalError

from producers.publisher import BrokerUnavailable
from producers.topology import Topology


def queue_depths(connect: Callable[[], Connection], topology: Topology) -> dict[str, int | None]:
    """Messages waiting per queue (short name -> count; None for a queue the broker does not have)."""
    prefix = f"{topology.namespace}."
    depths: dict[str, int | None] = {}
    connection = connect()
    try:
        connection.ensure_connection(max_retries=1)
        channel = connection.channel()
        for queue in (topology.crm_to_ameise, topology.ameise_to_crm, topology.dead_letters):
            name = queue.name.removeprefix(prefix)
            try:
                depths[name] = int(channel.queue_declare(queue=queue.name, passive=True).message_count)
            except connection.channel_errors:
                depths[name] = None                  # not declared (yet); that closed the channel
                channel = connection.channel()
    except (OSError, OperationalError, *connection.connection_errors) as exc:
        raise BrokerUnavailable(f"the broker cannot be reached: {type(exc).__name__}") from exc
    finally:
        connection.release()
    return depths
