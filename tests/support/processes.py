"""The Procfile's processes started as subprocesses."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from simulators.stack import AMEISE_API_PATH

ROOT = Path(__file__).resolve().parents[2]


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def start(command: str, env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def service_env(*, database_url: str, broker_url: str, namespace: str, zoho_url: str, ameise_url: str,
                **settings: str) -> dict[str, str]:
    """The environment of the service's processes against the simulators, this Python's scripts first."""
    return {
        **os.environ,
        "PATH": f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '')}",
        "SYNCBRIDGE_DATABASE_URL": database_url,
        "SYNCBRIDGE_BROKER_URL": broker_url,
        "SYNCBRIDGE_NAMESPACE": namespace,
        "SYNCBRIDGE_ZOHO_ACCOUNTS_URL": zoho_url,
        "SYNCBRIDGE_AMEISE_AUTH_URL": ameise_url,
        "SYNCBRIDGE_AMEISE_API_URL": ameise_url + AMEISE_API_PATH,
        "SYNCBRIDGE_AMEISE_VERMITTLER": "A1B2C3",
        **settings,
    }
