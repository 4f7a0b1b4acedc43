"""The DailyUp path of the dev stack: uploading, listing imports and waiting for them to apply."""
from __future__ import annotations

import requests

from syncbridge.ports import AMEISE_TO_CRM
from tests.support.waiting import wait_for

UPLOAD = {"X-Upload-Token": "dev-dailyup-upload-token"}


ADMIN = {"X-Admin-Token": "dev-admin-token"}


def inbox(stack):
    from pathlib import Path

    return Path(stack.settings.dailyup_dir) / "inbox"


def imports(stack) -> list[dict]:
    answer = requests.get(f"{stack.receiver.url}/dailyup/imports", headers=ADMIN, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()["imports"]


def wait_imported(stack, count: int) -> dict:
    """The newest import, once ``count`` imports exist and the newest has finished publishing (or failed)."""
    def done():
        found = imports(stack)
        if len(found) >= count and found[0]["state"] in ("published", "rejected", "superseded"):
            return found[0]
        return None
    return wait_for(done, timeout=60, interval=0.2, what=f"import #{count}")


def wait_applied(stack, imported: dict) -> None:
    """Wait until every published delta of an import is in the CRM (its entry in the activity log)."""
    published = sum(n for kind, n in imported["deltas"].items() if kind != "suppressed")

    def applied():
        entries = stack.services.store.activities(direction=AMEISE_TO_CRM, result="ok", limit=10_000)
        return sum(e.event_id.startswith(f"{imported['id']}:") for e in entries) >= published
    wait_for(applied, timeout=30, what=f"the deltas of import {imported['id']} in the CRM")
