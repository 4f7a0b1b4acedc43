"""/readyz answers anyone: it names the checks that failed, never the driver's text (hosts, ports, users)."""
from __future__ import annotations

import logging

from producers.memory import MemoryPublisher
from producers.publisher import Publisher
from syncbridge.bootstrap import web_app
from syncbridge.config import Settings

DOWN_DATABASE = "postgresql+psycopg://syncbridge_reader@127.0.0.1:9/secretdb?connect_timeout=2"
DOWN_BROKER = "amqp://guest:guest@127.0.0.1:1//"


def test_readyz_says_which_check_failed_and_logs_why(namespace, topology, caplog):
    settings = Settings.from_env({}, database_url=DOWN_DATABASE, namespace=namespace)
    publisher = MemoryPublisher(topology)
    caplog.set_level(logging.WARNING, logger="syncbridge.webhooks")
    try:
        response = web_app(settings, publisher=publisher).test_client().get("/readyz")
    finally:
        publisher.close()

    assert response.status_code == 503
    assert response.get_json() == {"status": "not_ready", "checks": {"broker": "ok", "database": "unavailable"}}
    text = response.get_data(as_text=True)
    for secret in ("127.0.0.1", "5432", ":9", "syncbridge_reader", "secretdb", "OperationalError"):
        assert secret not in text
    assert "readiness check database failed" in caplog.text and "127.0.0.1" in caplog.text


def test_readyz_with_the_broker_down_names_the_broker(namespace, topology):
    settings = Settings.from_env({}, namespace=namespace, database_url="sqlite://")
    down = Publisher(DOWN_BROKER, topology, connect_timeout=1)

    response = web_app(settings, publisher=down).test_client().get("/readyz")

    assert response.status_code == 503
    assert response.get_json() == {"status": "not_ready", "checks": {"broker": "unavailable", "database": "ok"}}
    assert "refused" not in response.get_data(as_text=True).lower()
