"""The ``syncbridge`` command through click's CliRunner, in an environment of its own."""
from __future__ import annotations

import os

from click.testing import CliRunner

from syncbridge.cli import main


def cli(*args: str, **env: str):
    """Run ``syncbridge ARGS`` with extra environment variables; exceptions are kept on the result."""
    return CliRunner().invoke(main, list(args), env=env or None, prog_name="syncbridge")


def fresh_sqlite_environment(monkeypatch, tmp_path) -> str:
    """Clear every SYNCBRIDGE_* variable of the calling shell and point the service at a fresh SQLite file."""
    for name in list(os.environ):
        if name.startswith("SYNCBRIDGE_") or name == "SENTRY_DSN":
            monkeypatch.delenv(name)
    url = f"sqlite:///{tmp_path}/x.db"
    monkeypatch.setenv("SYNCBRIDGE_DATABASE_URL", url)
    return url
