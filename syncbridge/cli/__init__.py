"""The ``syncbridge`` command: one module per command group, all on the group of :mod:`.common`."""
from syncbridge.cli import (  # noqa: F401 - each registers its commands
    check,
    dailyup,
    dashboard,
    dev,
    dlq,
    link,
    service,
    sweep,
)
from syncbridge.cli.common import main

__all__ = ["main"]
