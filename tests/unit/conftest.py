"""Fixtures of the unit tests: a fresh topology and a publisher on kombu's in-process broker."""
from __future__ import annotations

import pytest

from producers.memory import MemoryPublisher
from producers.topology import build_topology

MEMORY = "memory://localhost/"


@pytest.fixture
def topology(namespace):
    return build_topology(namespace)


@pytest.fixture
def publisher(topology):
    publisher = MemoryPublisher(topology, MEMORY)
    yield publisher
    publisher.close()
