"""SIGTERM stops the `dailyup` worker within seconds even in the middle of a large import.

The worker runs as the Procfile runs it, as a subprocess on the real RabbitMQ and a
SQLite file; the delivery it is reading when the signal comes stays in the inbox,
with nothing of it applied, to be taken again at the next start.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from sqlalchemy import create_engine, func, select

from syncbridge.adapters.db.dailyup import IMPORTS, SNAPSHOT
from syncbridge.dailyup.generate import write_delivery
from tests.support.processes import ROOT, procfile, start
from tests.support.waiting import wait_for


def test_sigterm_stops_the_dailyup_worker_mid_import_and_the_delivery_stays(rabbitmq_url, namespace, tmp_path):
    database = tmp_path / "syncbridge.db"
    env = {
        **os.environ,
        "PATH": f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '')}",
        "SYNCBRIDGE_DATABASE_URL": f"sqlite:///{database}",
        "SYNCBRIDGE_BROKER_URL": rabbitmq_url,
        "SYNCBRIDGE_NAMESPACE": namespace,
        "SYNCBRIDGE_DAILYUP_DIR": str(tmp_path / "dailyup"),
        "SYNCBRIDGE_DAILYUP_POLL_SECONDS": "0.2",
    }
    lines = procfile()
    release = subprocess.run(["bash", "-c", lines["release"]], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=60)
    assert release.returncode == 0, release.stderr
    inbox = tmp_path / "dailyup" / "inbox"
    inbox.mkdir(parents=True)
    # 100,000 rows: reading, storing and comparing them takes the worker well over ten seconds.
    delivery = write_delivery(inbox, customers=40_000)
    settled = time.time() - 60
    os.utime(delivery, (settled, settled))
    log = tmp_path / "worker-dailyup.log"

    worker = start(lines["worker-dailyup"], env, log)
    try:
        wait_for(lambda: "DailyUp read: 10000" in log.read_text(), timeout=60, interval=0.1, what="the import under way")
        worker.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        exit_code = worker.wait(timeout=30)
        took = time.monotonic() - signalled
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    output = log.read_text()
    assert exit_code == 0, output
    assert took < 5, f"the worker took {took:.1f} s to stop\n{output}"
    assert f"stopped while importing {delivery.name}; it stays in the inbox" in output
    assert [p.name for p in inbox.iterdir()] == [delivery.name]
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(IMPORTS)).scalar() == 0
            assert conn.execute(select(func.count()).select_from(SNAPSHOT)).scalar() == 0
    finally:
        engine.dispose()
