"""The objects the receiver's routes work with, built once per app by create_app."""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import current_app

from producers.publisher import Publisher
from producers.topology import Topology
from syncbridge.config import Settings

Check = Callable[[], None]
EXTENSION = "syncbridge.receiver"


@dataclass
class Receiver:
    """Settings, publisher, topology and readiness checks of one app."""

    settings: Settings
    publisher: Publisher
    topology: Topology
    checks_factory: Callable[[], dict[str, Check]]
    _checks: dict[str, Check] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def checks(self) -> dict[str, Check]:
        """The readiness checks, built on first use (building them may import what the receiver does not need)."""
        with self._lock:
            if self._checks is None:
                self._checks = dict(self.checks_factory())
            return self._checks


def current_receiver() -> Receiver:
    """The Receiver of the app handling this request."""
    return current_app.extensions[EXTENSION]
