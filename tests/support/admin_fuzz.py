"""The admin API under fuzzing: a receiver with dead letters and the checks each answer must pass."""
from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from hypothesis import HealthCheck, settings

from producers.memory import MemoryPublisher
from producers.topology import build_topology
from syncbridge.adapters.db import migrate
from syncbridge.adapters.db.dead_letters import SqlDeadLetterStore
from syncbridge.adapters.db.sql import SqlStore
from syncbridge.bootstrap import web_app
from syncbridge.config import Settings
from syncbridge.handlers.dead_letters import archive_dead_letter
from tests.support.admin_strategies import AdminRequest, problems
from tests.support.dead_letters import delta_body, ours
from tests.support.fuzzing import examples, outcome
from tests.support.queues import MEMORY, ROUTING_KEY, event_body

ADMIN_TOKEN = "fuzz-admin-token"


MAX_SECONDS = 5.0   # per request, on a loaded two-core machine; each one takes milliseconds


def fuzzable_app(database_url: str, dailyup_dir: str):
    """The receiver on ``database_url`` (migrated here) with three dead letters; returns (client, close)."""
    migrate.upgrade(database_url)
    namespace = f"sbfuzz-{uuid.uuid4().hex[:10]}"
    topology = build_topology(namespace)
    store = SqlStore.from_url(database_url)
    letters = SqlDeadLetterStore(store.engine)
    now = datetime.now(UTC)
    for message in (ours(ROUTING_KEY, event_body(), at=now, namespace=namespace),
                    ours("ameise.customer.changed", delta_body(), kind="contract", at=now, namespace=namespace),
                    ours("ameise.customer.changed", b"\x00\xff not json", kind="undecodable", at=now,
                         namespace=namespace)):
        archive_dead_letter(letters, topology, message)
    store.engine.dispose()
    publisher = MemoryPublisher(topology, MEMORY)
    app_settings = Settings.from_env({}, database_url=database_url, dailyup_dir=dailyup_dir, namespace=namespace,
                                     admin_token=ADMIN_TOKEN)
    return web_app(app_settings, publisher=publisher).test_client(), publisher.close


def send(client, request: AdminRequest):
    """Send through Flask's test client; return (status, content type, body, seconds)."""
    started = time.monotonic()
    response = client.open(request.target, method=request.method, headers=request.headers, data=request.body)
    body = response.get_data()
    return response.status_code, response.content_type or "", body, time.monotonic() - started


def check(client, request: AdminRequest, *, allowed_5xx: tuple[int, ...] = ()) -> int:
    """Send ``request``; fail on a 5xx (but those allowed), a non-JSON answer, or one that took too long."""
    status, content_type, body, elapsed = send(client, request)
    found = problems(status, content_type, body, elapsed, max_seconds=MAX_SECONDS, allowed_5xx=allowed_5xx)
    assert not found, f"{request}: {found}; answer {status} {body[:300]!r}"
    outcome(str(status))
    return status


FUZZ = settings(max_examples=examples(150), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
