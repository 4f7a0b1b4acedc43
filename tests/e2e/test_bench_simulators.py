"""bench/simulators.py, small: it still drives both simulators as the benchmarks serve them and prints its figures."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_the_simulator_benchmark_prints_its_figures():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "simulators.py"), "--quick"],
                         capture_output=True, text=True, timeout=110, cwd=ROOT)

    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    summary = dict(pair.split("=", 1) for pair in run.stdout.strip().splitlines()[-1].split())
    assert set(summary) == {"zoho_ms", "ameise_ms", "search_ms", "delay_rps"}
    for key in ("zoho_ms", "ameise_ms"):
        assert 0 < float(summary[key]) < 100, key
    assert 0 <= float(summary["search_ms"]) < 100   # CPU is counted in ticks of 10 ms: a few searches may show 0
    # 16 connections at once, each call waiting 50 ms: served side by side, not one after another (20/s).
    assert float(summary["delay_rps"]) > 40
