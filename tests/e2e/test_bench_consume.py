"""bench/scale.py and bench/e2e.py, small: each still runs end to end and prints its summary line.

No speed is asserted: only that the figures come out, of the right kind, with nothing
lost and no record created twice (two deliveries of every fifth record race in scale).
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def summary(script: str, *args: str, timeout: float) -> dict[str, str]:
    run = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], capture_output=True, text=True,
                         timeout=timeout, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    return {**dict(pair.split("=", 1) for pair in lines[-2].split() if "=" in pair),
            "_last": lines[-1], **dict(pair.split("=", 1) for pair in lines[-1].split())}


@pytest.mark.timeout(110)
def test_the_scale_benchmark_prints_its_figures(rabbitmq_url):
    figures = summary("scale.py", "--quick", "--records", "30", "--broker-url", rabbitmq_url, timeout=100)

    assert figures["_last"].split() and [p.split("=")[0] for p in figures["_last"].split()] == \
        ["c1", "c2", "c4", "speedup4", "c1_50ms", "c4_50ms"]
    assert all(float(figures[key]) > 0 for key in ("c1", "c2", "c4", "speedup4", "c1_50ms", "c4_50ms"))
    assert figures["lost"] == "0" and figures["duplicates"] == "0"
    assert float(figures["cpu_ms_c1"]) > 0


@pytest.mark.timeout(110)
def test_the_end_to_end_benchmark_prints_its_figures(rabbitmq_url):
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "e2e.py"), "--quick", "--broker-url", rabbitmq_url],
                         capture_output=True, text=True, timeout=100, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    figures = {**dict(pair.split("=", 1) for pair in lines[-2].split() if "=" in pair),
               "_last": lines[-1], **dict(pair.split("=", 1) for pair in lines[-1].split())}

    assert [p.split("=")[0] for p in figures["_last"].split()] == \
        ["rate", "p50_ms", "p99_ms", "max_ms", "lost", "duplicates", "zoho_calls_record", "zoho_credits_record",
         "cpu_ms_record", "service_cpu_ms_record", "cpu_bound_rate", "service_cpu_bound_rate"]
    assert figures["rate"] == "100" and figures["accepted"] == figures["sent"] == "300"   # every webhook got its 202
    p50, p99, most = float(figures["p50_ms"]), float(figures["p99_ms"]), float(figures["max_ms"])
    assert not math.isnan(p50) and 0 < p50 <= p99 <= most
    assert figures["lost"] == "0" and figures["duplicates"] == "0"
    # Each new contact: one read of it (a credit) and its number written back (a credit per ten records).
    assert 1 < float(figures["zoho_calls_record"]) <= 2 and 1 < float(figures["zoho_credits_record"]) <= 2

    # The sender held the planned rate, and the CPU of every part of the stack was counted for the round.
    assert float(figures["achieved_rate"]) > 80
    cpu_line = next(line for line in lines if line.startswith("round 1 CPU ms/record:"))
    cpu = dict(pair.split("=", 1) for pair in cpu_line.split(";")[0].split() if "=" in pair)
    assert list(cpu) == ["web", "worker", "zoho", "ameise", "postgres", "rabbitmq", "sender", "sum"]
    assert all(float(cpu[part]) > 0 for part in ("web", "worker", "zoho", "ameise", "postgres", "sender"))
    assert "machine busy" in cpu_line

    # The bound: the service's share is part of the whole, and each rate is the cores over its CPU per record.
    whole, service = float(figures["cpu_ms_record"]), float(figures["service_cpu_ms_record"])
    assert 0 < service < whole
    assert whole == pytest.approx(float(cpu["sum"]), abs=0.02)
    cores = len(os.sched_getaffinity(0))
    assert float(figures["cpu_bound_rate"]) == pytest.approx(cores * 1000 / whole, rel=0.01)
    assert float(figures["service_cpu_bound_rate"]) == pytest.approx(cores * 1000 / service, rel=0.01)
