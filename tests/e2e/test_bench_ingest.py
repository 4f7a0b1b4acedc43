"""bench/ingest.py, short: it still starts its three servers, loads them with wrk and prints its figures."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYS = ["rps_syncbridge", "rps_noop", "rps_obvious", "ratio_noop", "ratio_obvious", "p99_ms"]


@pytest.mark.rabbitmq
def test_the_ingest_benchmark_prints_its_figures_and_every_202_was_queued(rabbitmq_url):
    assert shutil.which("wrk"), "the ingest benchmark needs wrk (apt-get install -y wrk)"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "ingest.py"), "--quick", "--rounds", "1",
                          "--seconds", "2", "--connections", "8", "--broker-url", rabbitmq_url],
                         capture_output=True, text=True, timeout=110, cwd=ROOT)

    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    lines = run.stdout.strip().splitlines()
    summary = dict(pair.split("=", 1) for pair in lines[-1].split())
    assert list(summary) == KEYS
    assert all(float(summary[key]) > 0 for key in KEYS)
    assert float(summary["ratio_noop"]) == pytest.approx(
        float(summary["rps_syncbridge"]) / float(summary["rps_noop"]), abs=0.02)
    contenders = {}
    for line in lines:
        if line.startswith("contender="):
            figures = dict(pair.split("=", 1) for pair in line.split())
            contenders[figures["contender"]] = figures
    for name in ("syncbridge", "obvious"):
        figures = contenders[name]
        # Every 202 is a message in the queue; at most the requests wrk stopped waiting for are extra.
        assert int(figures["accepted"]) > 0 and figures["unmatched_202"] == "0" and figures["errors"] == "0"
        assert int(figures["accepted"]) <= int(figures["queued"]) <= int(figures["accepted"]) + 8
