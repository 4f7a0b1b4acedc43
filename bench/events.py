"""Benchmark of the Events page on PostgreSQL: a page of the activity log at a million rows.

Fills a schema of its own (dropped at the end) with ``--rows`` activity rows (four
in five attempts, the rest a handler's steps; 90 days; 5 % failed), then measures,
each the median of ``--rounds`` rounds:

* the first page (no filter), a deep page (keyset: older than a cursor 90 % down),
  a filtered page (direction + result + error kind) and a free-text page (a part of
  the error) through the dashboard's query path (``SqlActivityLog.events``);
* the same four through HTTP: the dashboard app under Flask's test client, signed in;
* which index each plan starts from (EXPLAIN).

It ends with ONE summary line of key=value pairs::

    rows=1000000 first_page_ms=… deep_page_ms=… filtered_ms=… text_ms=… http_first_ms=… …

    python bench/events.py                      # 1,000,000 rows
    python bench/events.py --quick              # 100,000 rows, under a minute
    python bench/events.py --rows 20000 --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

The machine is shared and noisy: compare figures of one run with each other.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PAGE = 50
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
INDEX = re.compile(r"(?:Index Scan|Index Only Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\w+)")

# One statement fills the table: rows numbered n = 1..rows, newest at n = rows.
FILL = """
INSERT INTO activity_log (at, direction, action, result, entity, zoho_module, zoho_id, ameise_id, event_id, error,
                          details, source, received_at, attempt, duration_ms, error_kind, error_code, error_field)
SELECT CAST(:start AS timestamptz) + (n * CAST(:step AS bigint)) * interval '1 millisecond',
       CASE WHEN n % 3 = 0 THEN 'ameise_to_crm' ELSE 'crm_to_ameise' END,
       CASE WHEN n % 20 = 0 THEN 'failed' WHEN n % 5 = 4 THEN 'created' ELSE 'updated' END,
       CASE WHEN n % 20 = 0 THEN 'error' ELSE 'ok' END,
       CASE WHEN n % 4 = 0 THEN 'contract' ELSE 'customer' END,
       CASE WHEN n % 4 = 0 THEN 'Deals' ELSE 'Contacts' END,
       '4150868' || lpad((n % 200000)::text, 12, '0'),
       '5' || lpad((n % 200000)::text, 9, '0'),
       'evt-' || (n / 2),
       CASE WHEN n % 20 = 0 THEN (CASE WHEN n % 60 = 0 THEN 'zoho 502: Bad Gateway after ' || n
                                       ELSE 'zoho INVALID_DATA field=Email: invalid e-mail ' || n END) END,
       '{}'::json,
       CASE WHEN n % 5 = 4 THEN NULL WHEN n % 3 = 0 THEN 'dailyup' ELSE 'zoho-workflow' END,
       CAST(:start AS timestamptz) + (n * CAST(:step AS bigint) - 900) * interval '1 millisecond',
       CASE WHEN n % 5 = 4 THEN NULL ELSE 1 + (n % 7 = 0)::int END,
       20 + n % 400,
       CASE WHEN n % 20 = 0 THEN (CASE WHEN n % 60 = 0 THEN 'unavailable' ELSE 'rejected' END) END,
       CASE WHEN n % 20 = 0 THEN (CASE WHEN n % 60 = 0 THEN '502' ELSE 'INVALID_DATA' END) END,
       CASE WHEN n % 20 = 0 AND n % 60 <> 0 THEN 'Email' END
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS n
"""


def median_ms(call: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def schema_url(database_url: str, schema: str) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(database_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def fill(engine, rows: int) -> None:
    from sqlalchemy import text

    start = datetime.now(UTC) - timedelta(days=90)
    step = int(90 * 86400 * 1000 / max(rows, 1))     # milliseconds between two rows: 90 days in all
    chunk = 200_000
    with engine.begin() as conn:
        for first in range(1, rows + 1, chunk):
            conn.execute(text(FILL), {"start": start, "step": step, "first": first, "last": min(rows, first + chunk - 1)})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE activity_log"))


def plan_index(engine, query) -> str:
    """The first index the plan of ``query`` reads (``none`` when it scans the table)."""
    from sqlalchemy import text
    from sqlalchemy.dialects import postgresql

    compiled = query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        plan = "\n".join(row[0] for row in conn.execute(text(f"EXPLAIN {compiled}")))
    found = INDEX.search(plan)
    return found.group(1) if found else "none"


def http_client(settings, engine):
    """The dashboard app under Flask's test client, signed in as a viewer."""
    from syncbridge.adapters.db.sql import SqlStore
    from syncbridge.bootstrap import dashboard_app, dashboard_parts

    parts = dashboard_parts(settings, store=SqlStore(engine))
    parts.operators.create("bench", "bench-passwort-1", "viewer", by="bench")
    client = dashboard_app(settings, parts=parts).test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    token = CSRF.search(client.get("/login").get_data(as_text=True)).group(1)
    answer = client.post("/login", data={"csrf_token": token, "username": "bench", "password": "bench-passwort-1"})
    if answer.status_code != 302:
        raise RuntimeError(f"signing in failed: {answer.status_code}")
    return client


def run(rows: int, database_url: str, rounds: int) -> dict[str, object]:
    from sqlalchemy import select, text

    from syncbridge.adapters.db import migrate
    from syncbridge.adapters.db.events import SqlActivityLog, event_query
    from syncbridge.adapters.db.sql import ACTIVITY, make_engine
    from syncbridge.config import Settings
    from syncbridge.handlers.events import encode_cursor
    from syncbridge.ports import EventFilter

    schema = f"bench_events_{uuid.uuid4().hex[:10]}"
    admin = make_engine(database_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = schema_url(database_url, schema)
    engine = make_engine(url)
    try:
        migrate.upgrade(url)
        started = time.perf_counter()
        fill(engine, rows)
        result: dict[str, object] = {"rows": rows, "fill_s": round(time.perf_counter() - started, 1)}
        log = SqlActivityLog(engine)
        with engine.connect() as conn:
            attempts = conn.execute(select(text("count(*)")).select_from(ACTIVITY)
                                    .where(ACTIVITY.c.attempt.is_not(None))).scalar_one()
            # Setting up the deep cursor may count its way down; the measured page never does.
            deep = conn.execute(select(ACTIVITY.c.at, ACTIVITY.c.id).where(ACTIVITY.c.attempt.is_not(None))
                                .order_by(ACTIVITY.c.at.desc(), ACTIVITY.c.id.desc())
                                .offset(int(attempts * 0.9)).limit(1)).one()
        cursor = (deep.at, deep.id)
        filtered = EventFilter(direction="crm_to_ameise", result="error", error_kind="rejected")
        free_text = EventFilter(text="Bad Gateway")
        cases = {"first_page": (EventFilter(), None), "deep_page": (EventFilter(), cursor),
                 "filtered": (filtered, None), "text": (free_text, None)}
        for name, (flt, after) in cases.items():
            page = log.events(flt, after=after, limit=PAGE + 1)
            if not page:
                raise RuntimeError(f"{name}: no rows")
            result[f"{name}_ms"] = median_ms(lambda flt=flt, after=after: log.events(flt, after=after, limit=PAGE + 1),
                                             rounds)
            result[f"{name}_index"] = plan_index(engine, event_query(flt, after, PAGE + 1))

        settings = Settings.from_env({}, database_url=url)
        client = http_client(settings, engine)
        forms = {"http_first": ({}, ""), "http_deep": ({}, f"?after={encode_cursor(cursor)}"),
                 "http_filtered": ({"direction": "crm_to_ameise", "result": "error", "error_kind": "rejected"}, ""),
                 "http_text": ({"q": "Bad Gateway"}, "")}
        for name, (values, query) in forms.items():
            with client.session_transaction() as session:
                session["events_filter"] = values

            def get(query=query) -> None:
                answer = client.get(f"/events{query}")
                if answer.status_code != 200:
                    raise RuntimeError(f"GET /events{query}: {answer.status_code}")

            result[f"{name}_ms"] = median_ms(get, rounds)
        return result
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 rows")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per figure (the median is shown; at least 3)")
    parser.add_argument("--database-url", default=DEFAULT_URL, help="a PostgreSQL database (a schema of its own is used)")
    args = parser.parse_args()
    rows = 100_000 if args.quick else args.rows
    result = run(rows, args.database_url, max(3, args.rounds))
    print(" ".join(f"{key}={value}" for key, value in result.items()), flush=True)


if __name__ == "__main__":
    main()
