"""What the dashboard's pages call, built by ``syncbridge.bootstrap.dashboard_parts``."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from syncbridge.handlers.events import EventSources
from syncbridge.handlers.operators import Operators
from syncbridge.handlers.overview import OverviewSources

EXTENSION = "syncbridge.dashboard"


@dataclass
class DashboardParts:
    """The core's objects one dashboard process uses; a new page adds what it needs here (and in bootstrap)."""

    operators: Operators
    overview_sources: OverviewSources
    events: EventSources | None = None      # the Events and Record timeline pages


def parts() -> DashboardParts:
    """The parts of the running app."""
    found: DashboardParts = current_app.extensions[EXTENSION]
    return found
