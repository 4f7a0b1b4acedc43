"""Everything that publishes (the adapter of the publisher port): the confirmed publisher, the topology, dead-lettering, delayed retries."""
from producers.publisher import BrokerUnavailable, Publisher

__all__ = ["BrokerUnavailable", "Publisher"]
