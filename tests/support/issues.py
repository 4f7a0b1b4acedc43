"""Dead letters of known causes in a dashboard's archive, for the Issues and Dead letters pages' tests."""
from __future__ import annotations

from datetime import datetime, timedelta

from syncbridge.handlers.dead_letters import archive_dead_letter
from tests.support.dead_letters import ours
from tests.support.queues import event_body

INVALID_EMAIL = "zoho 400 INVALID_DATA field=Email: invalid data"
INVALID_EMAIL_CAUSE = "rejected zoho INVALID_DATA field=Email"
BROKEN_CAUSE = "contract-violation"


def seed(parts, topology, at: datetime, *, invalid_email: int = 3, broken: int = 1) -> dict[str, list[int]]:
    """``invalid_email`` dead letters of one Zoho cause (valid bodies) and ``broken`` ones failing their contract."""
    letters = parts.dead_letter_ops.letters
    ids: dict[str, list[int]] = {"invalid_email": [], "broken": []}
    for n in range(invalid_email):
        body = event_body(record_id=f"41508680000003760{n:02d}")
        message = ours("crm.contacts.changed", body, kind="rejected", at=at - timedelta(minutes=10 - n),
                       namespace=topology.namespace, **{"x-error": INVALID_EMAIL})
        ids["invalid_email"].append(archive_dead_letter(letters, topology, message))
    for n in range(broken):
        body = event_body(record_id=f"41508680000009990{n:02d}", drop=("module",))
        message = ours("crm.contacts.changed", body, kind="contract-violation", at=at - timedelta(minutes=5 - n),
                       namespace=topology.namespace,
                       **{"x-error": "contract CrmRecordChanged v1 violated: {'module': ['Missing data.']}"})
        ids["broken"].append(archive_dead_letter(letters, topology, message))
    return ids
