"""Hostile requests against every admin route and the DailyUp admin routes: no 5xx, JSON errors, bounded time.

The app runs on a SQLite file with a few archived dead letters and an import,
and kombu's in-process broker; :mod:`tests.integration.test_admin_fuzz_postgres`
runs the same requests against PostgreSQL.
"""
from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings

from producers.memory import MemoryPublisher
from producers.topology import build_topology
from syncbridge.adapters.db import migrate
from syncbridge.adapters.db.dead_letters import SqlDeadLetterStore
from syncbridge.adapters.db.sql import SqlStore
from syncbridge.config import Settings
from syncbridge.dlq import archive_dead_letter
from tests.support.admin_strategies import AdminRequest, admin_requests, problems
from tests.support.fuzzing import examples, outcome
from tests.unit.test_consumer import MEMORY, ROUTING_KEY, event_body
from tests.unit.test_dlq import delta_body, ours
from webhooks import create_app

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
    return create_app(app_settings, publisher=publisher).test_client(), publisher.close


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


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    folder = tmp_path_factory.mktemp("admin-fuzz")
    client, close = fuzzable_app(f"sqlite:///{folder / 'syncbridge.db'}", str(folder / "dailyup"))
    yield client
    close()


@FUZZ
@given(request=admin_requests(ADMIN_TOKEN))
def test_no_admin_request_gets_a_5xx_or_a_non_json_answer(client, request):
    check(client, request)


@settings(FUZZ, max_examples=examples(60))
@given(request=admin_requests(ADMIN_TOKEN, authenticated=False))
def test_without_the_token_nothing_is_parsed(client, request):
    # Nothing is read or parsed without the token; a path no route has is a 404 all the same.
    assert check(client, request) in (401, 404)


@pytest.mark.parametrize("request_", [
    AdminRequest("GET", "/admin/dead-letters", "limit=%C2%B2", {"X-Admin-Token": ADMIN_TOKEN}),
    AdminRequest("GET", "/admin/dead-letters/99999999999999999999", "", {"X-Admin-Token": ADMIN_TOKEN}),
    AdminRequest("GET", "/admin/dead-letters", "until=0001-01-01T00%3A00%3A00%2B14%3A00", {"X-Admin-Token": ADMIN_TOKEN}),
    AdminRequest("POST", "/admin/dead-letters/replay", "", {"X-Admin-Token": ADMIN_TOKEN}, b"[" * 30000),
    AdminRequest("GET", "/dailyup/imports/%C2%B2", "", {"X-Admin-Token": ADMIN_TOKEN}),
], ids=["superscript-limit", "huge-id", "until-overflow", "nested-json", "superscript-ref"])
def test_the_known_hostile_requests_pass_the_same_checks(client, request_):
    check(client, request_)
