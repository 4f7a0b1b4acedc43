"""The objects the receiver's routes work with, handed to create_app by bootstrap."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flask import current_app

from producers.publisher import Publisher
from producers.topology import Topology
from syncbridge.config import Settings

Check = Callable[[], None]
EXTENSION = "syncbridge.receiver"


@dataclass(frozen=True)
class Receiver:
    """Settings, publisher, topology and readiness checks of one app."""

    settings: Settings
    publisher: Publisher
    topology: Topology
    checks: dict[str, Check] = field(default_factory=dict)


def current_receiver() -> Receiver:
    """The Receiver of the app handling this request."""
    return current_app.extensions[EXTENSION]
