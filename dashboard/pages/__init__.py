"""The dashboard's page areas: one module per area, each with one blueprint and its navigation entries.

To add an area, write ``dashboard/pages/<area>.py`` defining ``page = Page(bp, nav=(...))``
and add its module name to :data:`PAGES`; its templates go to
``dashboard/templates/pages/<area>/`` and extend ``layout.html``.  Every route
requires a signed-in user (viewer or higher); an action that needs more says so
with ``@requires("operator")`` or ``@requires("admin")``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Blueprint

# In navigation order.
PAGES = (
    "dashboard.pages.overview",
    "dashboard.pages.events",
    "dashboard.pages.imports",
    "dashboard.pages.statistics",
    "dashboard.pages.issues",
    "dashboard.pages.dead_letters",
    "dashboard.pages.connections",
    "dashboard.pages.metrics",
    "dashboard.pages.users",
    "dashboard.pages.audit",
    "dashboard.pages.linking",
)


@dataclass(frozen=True)
class NavEntry:
    """One link of the navigation: shown to users whose role includes ``role``."""

    endpoint: str                       # e.g. "overview.index"
    label: Callable[[], str]            # lazy_gettext("Overview"): translated when the layout renders it
    role: str = "viewer"


@dataclass(frozen=True)
class Page:
    """A page area: its blueprint and its navigation entries."""

    blueprint: Blueprint
    nav: tuple[NavEntry, ...] = field(default_factory=tuple)
