"""The daily watch reports a missing delivery only once one was to be expected (an injected clock)."""
from __future__ import annotations

from datetime import UTC, date, datetime
from datetime import time as time_of_day

import pytest

from syncbridge.dailyup.intake import DailyUpWorker, DropFolder

AT = time_of_day(6, 0)


class NoImporter:
    def publish_pending(self) -> int:
        return 0


class Watch:
    """A worker on an empty drop folder whose clock, deliveries and earlier imports the test sets."""

    def __init__(self, folder: DropFolder, start: datetime, *, ever_received: bool = False) -> None:
        self.now = start
        self.delivered: set[date] = set()
        self.missing: list[date] = []
        self.earlier = ever_received
        self.worker = DailyUpWorker(NoImporter(), folder, poll_seconds=0.01, at=AT,
                                    received_on=lambda day: day in self.delivered, on_missing=self.missing.append,
                                    clock=lambda: self.now, ever_received=lambda: self.earlier)

    def at(self, when: datetime) -> list[date]:
        self.now = when
        self.worker.run_once()
        return self.missing


@pytest.fixture
def folder(tmp_path) -> DropFolder:
    return DropFolder.at(tmp_path / "dailyup")


def test_a_first_start_after_the_daily_time_does_not_report_that_day_missing(folder):
    watch = Watch(folder, datetime(2026, 11, 23, 14, 0, tzinfo=UTC))       # a fresh demo in the afternoon

    assert watch.at(datetime(2026, 11, 23, 14, 0, tzinfo=UTC)) == []
    assert watch.at(datetime(2026, 11, 23, 23, 59, tzinfo=UTC)) == []
    # The next morning a delivery is expected: the service has been running across 06:00.
    assert watch.at(datetime(2026, 11, 24, 6, 0, tzinfo=UTC)) == [date(2026, 11, 24)]


def test_a_start_before_the_daily_time_reports_that_day_missing(folder):
    watch = Watch(folder, datetime(2026, 11, 23, 5, 0, tzinfo=UTC))

    assert watch.at(datetime(2026, 11, 23, 5, 59, tzinfo=UTC)) == []
    assert watch.at(datetime(2026, 11, 23, 6, 1, tzinfo=UTC)) == [date(2026, 11, 23)]


def test_a_restart_after_the_daily_time_of_a_service_that_had_deliveries_still_checks(folder):
    watch = Watch(folder, datetime(2026, 11, 23, 9, 0, tzinfo=UTC), ever_received=True)

    assert watch.at(datetime(2026, 11, 23, 9, 0, tzinfo=UTC)) == [date(2026, 11, 23)]


def test_a_delivery_that_came_is_not_missing(folder):
    watch = Watch(folder, datetime(2026, 11, 23, 5, 0, tzinfo=UTC))
    watch.delivered.add(date(2026, 11, 23))

    assert watch.at(datetime(2026, 11, 23, 7, 0, tzinfo=UTC)) == []
