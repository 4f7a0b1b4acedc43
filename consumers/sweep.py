"""The sweep worker: a catch-up sweep of the CRM every SYNCBRIDGE_SWEEP_MINUTES, one at a time across processes.

Thin entrypoint: it waits for the broker (the sweep queues its events there),
then calls the core's sweep (:func:`syncbridge.handlers.sweep.run_sweep`) on
its interval.  A sweep that fails is logged and tried again at the next round;
the watermark has not moved, so nothing it would have queued is lost.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kombu import Connection

from consumers.base import RECONNECT_FIRST_S, RECONNECT_MAX_S, RECONNECT_STEP_S, Stopping
from producers.publisher import describe_error
from syncbridge.handlers.sweep import BulkStopped, LeaseLost

log = logging.getLogger(__name__)


class SweepWorker:
    """Run ``sweep`` every ``interval`` seconds (None: the sweep is off, the worker idles) until ``should_stop``."""

    name = "sweep"

    def __init__(self, connection: Connection, sweep: Callable[[], Any], *, interval: float | None) -> None:
        self.connection = connection
        self.sweep = sweep
        self.interval = interval
        self.should_stop = False
        self.rounds = 0

    def run(self) -> None:
        if not self._connected():
            return
        if self.interval is None:
            log.info("sweep: the catch-up sweep is off (SYNCBRIDGE_SWEEP_MINUTES=off); idle")
            self.pause(None)
            return
        log.info("sweep: a catch-up sweep every %.0f min", self.interval / 60)
        while not self.should_stop:
            try:
                self.sweep()
            except BulkStopped:
                break
            except LeaseLost as exc:
                log.warning("sweep: %s; its watermark stays, the next round sweeps again", exc)
            except Exception as exc:  # noqa: BLE001 - the next round tries again; nothing is lost meanwhile
                log.warning("sweep failed: %s; the watermark stays, tried again in %.0f min",
                            describe_error(exc), self.interval / 60)
            self.rounds += 1
            self.pause(self.interval)

    def pause(self, seconds: float | None) -> None:
        """Wait ``seconds`` (None: until stopped), returning early when asked to stop."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while not self.should_stop and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic())))

    def _connected(self) -> bool:
        """Wait until the broker answers (one line per failed attempt, waits growing); False when stopped first."""
        try:
            with self.connection.clone() as conn:
                conn.ensure_connection(self._on_connection_error, None, interval_start=RECONNECT_FIRST_S,
                                       interval_step=RECONNECT_STEP_S, interval_max=RECONNECT_MAX_S,
                                       callback=self._check_stop)
        except Stopping:
            return False
        log.info("%s: connected to the broker %s", self.name, self._broker())
        return not self.should_stop

    def _on_connection_error(self, exc, interval) -> None:
        self._check_stop()
        log.warning("%s: cannot reach the broker %s (%s); trying again in %.0f s", self.name, self._broker(),
                    describe_error(exc), interval)

    def _check_stop(self) -> None:
        if self.should_stop:
            raise Stopping()

    def _broker(self) -> str:
        return self.connection.as_uri().split("@")[-1]
