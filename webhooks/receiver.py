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
    # The synced modules' configured spellings by their lower-case name (the first of a name wins).
    modules: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        modules: dict[str, str] = {}
        for name in self.settings.zoho_modules:
            modules.setdefault(name.lower(), name)
        object.__setattr__(self, "modules", modules)

    def module_named(self, module: str) -> str | None:
        """The configured spelling of ``module`` (any case), None when it is not synced."""
        return self.modules.get(module.lower())


def current_receiver() -> Receiver:
    """The Receiver of the app handling this request."""
    return current_app.extensions[EXTENSION]
