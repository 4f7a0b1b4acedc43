"""The operator dashboard: server-rendered pages for the people who run syncbridge.

An entrypoint like ``webhooks/``, run as a web process of its own
(``syncbridge.bootstrap.dashboard_app``, gunicorn's factory; ``syncbridge dashboard``):
it calls the core's handlers through the parts bootstrap gives it and never
imports an adapter.  Pages are blueprints listed in :data:`dashboard.pages.PAGES`
(see ARCHITECTURE.md "Adding a dashboard page").
"""
from __future__ import annotations

from dashboard.app import create_app
from dashboard.parts import DashboardParts

__all__ = ["DashboardParts", "create_app"]
