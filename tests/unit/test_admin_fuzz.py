"""Hostile requests against every admin route and the DailyUp admin routes: no 5xx, JSON errors, bounded time.

The app runs on a SQLite file with a few archived dead letters and an import,
and kombu's in-process broker; :mod:`tests.integration.test_admin_fuzz_postgres`
runs the same requests against PostgreSQL.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings

from tests.support.admin_fuzz import ADMIN_TOKEN, FUZZ, check, fuzzable_app
from tests.support.admin_strategies import AdminRequest, admin_requests
from tests.support.fuzzing import examples


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
