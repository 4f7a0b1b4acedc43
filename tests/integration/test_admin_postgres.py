"""The admin API on PostgreSQL: ids past BIGINT, NUL and surrogates never reach the database; a short fuzz run.

SQLite takes a NUL in a string and says "too large" only for ids past 2^63-1;
PostgreSQL refuses NUL in text, a lone surrogate cannot even be encoded for it,
and an id past BIGINT is "out of range": each was a 500 here.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings

from tests.support.admin_fuzz import ADMIN_TOKEN, FUZZ, check, fuzzable_app
from tests.support.admin_strategies import AdminRequest, admin_requests
from tests.support.databases import pg_schema
from tests.support.fuzzing import examples

pytestmark = pytest.mark.postgres
ADMIN = {"X-Admin-Token": ADMIN_TOKEN}
JSON = {**ADMIN, "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def client(postgres_url, tmp_path_factory):
    with pg_schema(postgres_url) as url:
        client, close = fuzzable_app(url, str(tmp_path_factory.mktemp("dailyup")))
        yield client
        close()


@pytest.mark.parametrize(("request_", "status"), [
    (AdminRequest("GET", "/admin/dead-letters/9223372036854775808", "", ADMIN), 404),
    (AdminRequest("GET", "/admin/dead-letters/9223372036854775807", "", ADMIN), 404),
    (AdminRequest("GET", "/admin/dead-letters", "record=5001%00", ADMIN), 400),
    (AdminRequest("GET", "/admin/dead-letters", "kind=%00", ADMIN), 400),
    (AdminRequest("GET", "/admin/dead-letters", "record=%ED%A0%80", ADMIN), 200),     # not UTF-8: U+FFFD, no match
    (AdminRequest("POST", "/admin/dead-letters/replay", "", JSON, b'{"ids": [9223372036854775808]}'), 400),
    (AdminRequest("POST", "/admin/dead-letters/replay", "", JSON, b'{"ids": [9223372036854775807]}'), 200),
    (AdminRequest("POST", "/admin/dead-letters/discard", "", JSON, b'{"filter": {"record": "a\\u0000"}}'), 400),
    (AdminRequest("POST", "/admin/dead-letters/discard", "", JSON, b'{"ids": [1], "by": "\\ud800"}'), 400),
    (AdminRequest("POST", "/admin/dead-letters/discard", "", JSON,
                  b'{"ids": [1], "dry_run": true, "note": "x\\u0000"}'), 400),
    (AdminRequest("GET", "/dailyup/imports/9223372036854775808", "", ADMIN), 404),
    (AdminRequest("GET", "/dailyup/imports/9223372036854775808/kunden.csv", "", ADMIN), 404),
    (AdminRequest("GET", "/dailyup/imports", "sha256=%00", ADMIN), 400),
], ids=["id-past-bigint", "largest-id", "nul-record", "nul-kind", "invalid-utf8-record", "replay-id-past-bigint",
        "replay-largest-id", "nul-in-body-filter", "surrogate-by", "nul-note", "import-past-bigint",
        "table-past-bigint", "nul-sha256"])
def test_hostile_values_on_postgresql(client, request_, status):
    assert check(client, request_) == status


@settings(FUZZ, max_examples=examples(60))
@given(request=admin_requests(ADMIN_TOKEN))
def test_no_admin_request_gets_a_5xx_on_postgresql(client, request):
    check(client, request)
