"""A pooled PostgreSQL connection that the server dropped while it lay idle is replaced, not handed out."""
from __future__ import annotations

from sqlalchemy import create_engine, text

from syncbridge.adapters.db import sql
from syncbridge.adapters.db.sql import make_engine


def test_a_connection_dropped_while_idle_is_replaced(postgres_url, monkeypatch):
    monkeypatch.setattr(sql, "PING_AFTER_IDLE_S", 0.0)
    engine = make_engine(postgres_url)
    admin = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != pid
    finally:
        engine.dispose()
        admin.dispose()


def test_a_connection_in_steady_use_is_not_pinged(postgres_url, monkeypatch):
    monkeypatch.setattr(sql, "PING_AFTER_IDLE_S", 3600.0)
    engine = make_engine(postgres_url)
    statements: list[str] = []
    from sqlalchemy import event

    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        for _ in range(3):
            with engine.begin() as conn:
                conn.execute(text("SELECT 2"))
    finally:
        engine.dispose()
    assert statements == ["SELECT 2"] * 3
