"""Producers: put messages on the broker (the only place that publishes)."""
from producers.publisher import BrokerUnavailable, Publisher

__all__ = ["BrokerUnavailable", "Publisher"]
