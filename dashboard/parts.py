"""What the dashboard's pages call, built by ``syncbridge.bootstrap.dashboard_parts``."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app

from syncbridge.handlers.connections import ConnectionSources
from syncbridge.handlers.dead_letters import DeadLetterOps
from syncbridge.handlers.events import EventSources
from syncbridge.handlers.imports import ImportsDesk
from syncbridge.handlers.issues import BulkJobs, Issues
from syncbridge.handlers.linking import Linking
from syncbridge.handlers.operators import Operators
from syncbridge.handlers.overview import OverviewSources
from syncbridge.handlers.statistics import StatisticsSources
from syncbridge.ports import Store

EXTENSION = "syncbridge.dashboard"


@dataclass
class DashboardParts:
    """The core's objects one dashboard process uses; a new page adds what it needs here (and in bootstrap)."""

    operators: Operators
    overview_sources: OverviewSources
    # Dead letters and Issues
    dead_letter_ops: DeadLetterOps
    issues: Issues
    bulk_jobs: BulkJobs
    activity: Store                     # the activity log: an issue's events
    imports: ImportsDesk | None = None              # the Imports page (None: no DailyUp in this setup)
    statistics: StatisticsSources | None = None     # the Statistics page
    connections: ConnectionSources | None = None             # the Connections page (None: not offered)
    metrics: Callable[[], tuple[bytes, str]] | None = None   # /metrics: (body, content type) in Prometheus format
    events: EventSources | None = None      # the Events and Record timeline pages
    linking: Linking | None = None          # the Linking page: proposals of first-time linking


def parts() -> DashboardParts:
    """The parts of the running app."""
    found: DashboardParts = current_app.extensions[EXTENSION]
    return found
