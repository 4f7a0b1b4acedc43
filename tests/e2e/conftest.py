"""The whole service with both simulators over real HTTP, on the real RabbitMQ."""
from __future__ import annotations

import dataclasses

import pytest

from simulators.stack import start_stack
from syncbridge.config import Settings


@pytest.fixture(params=["sqlite"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/syncbridge.db"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def make_stack(rabbitmq_url, namespace, database_url, tmp_path):
    """Start receiver, consumer and simulators on RabbitMQ; stopped after the test."""
    stacks = []

    def make(**kwargs):
        """``start_stack(**kwargs)``; keyword arguments that name a setting override it."""
        names = {f.name for f in dataclasses.fields(Settings)}
        overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        settings = Settings.from_env({}, broker_url=rabbitmq_url, namespace=namespace, database_url=database_url,
                                     prefetch_count="5", dailyup_dir=str(tmp_path / "dailyup"),
                                     dailyup_poll_seconds="0.2", dailyup_batch_wait="0.2", **overrides)
        stack = start_stack(settings, **kwargs)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop()


@pytest.fixture
def stack(make_stack):
    return make_stack()
