"""The receiver's settings and tokens, and what it queued on the in-process broker."""
from __future__ import annotations

from kombu import Connection

from contracts.events import CrmRecordChangedSchema
from syncbridge.config import Settings

WEBHOOK_TOKEN = "wf-secret-4711"


NOTIFY_TOKEN = "notify-secret-0815"


FORMS_TOKEN = "forms-secret-42"


FLOW_TOKEN = "flow-secret-43"


def queued(topology) -> list[tuple]:
    """Every message waiting in the crm-to-ameise queue: (event loaded by its contract, message)."""
    schema = CrmRecordChangedSchema()
    result = []
    with Connection("memory://") as conn:
        simple = conn.SimpleQueue(topology.crm_to_ameise, accept=["application/json"])
        while True:
            try:
                message = simple.get(block=False)
            except simple.Empty:
                break
            message.ack()
            result.append((schema.load(message.payload), message))
    return result


def make_settings(namespace: str, **overrides: str) -> Settings:
    values = dict(
        namespace=namespace,
        zoho_webhook_token=WEBHOOK_TOKEN,
        zoho_notify_token=NOTIFY_TOKEN,
        forms_tokens=f"zoho-forms={FORMS_TOKEN},zoho-flow={FLOW_TOKEN}",
        zoho_modules="Contacts=person,Accounts=company,Deals=contract",
        forms_default_module="Contacts",
    )
    values.update(overrides)
    return Settings.from_env({}, **values)
