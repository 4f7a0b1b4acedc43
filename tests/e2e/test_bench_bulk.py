"""The credits benchmark, small: it still applies two days to the simulated Zoho and prints its summary."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_credits_benchmark_prints_its_summary():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "credits.py"), "--customers", "120"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)

    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    summary = dict(pair.split("=", 1) for pair in run.stdout.strip().splitlines()[-1].split())
    assert set(summary) >= {"first_per_credit", "next_per_credit", "next_min_credits", "next_used_credits"}
    # The figures agree with each other: records per credit are records over credits, and no day can
    # spend fewer credits than its changes need (an upsert bills 1 credit per 10 records, at most 10 per credit).
    assert float(summary["first_per_credit"]) == round(int(summary["first_records"]) / int(summary["first_credits"]), 2)
    assert float(summary["next_per_credit"]) == round(int(summary["next_records"]) / int(summary["next_used_credits"]), 2)
    assert 0 < int(summary["next_min_credits"]) <= int(summary["next_used_credits"])
    assert 0 < float(summary["first_per_credit"]) <= 10 and 0 < float(summary["next_per_credit"]) <= 10
    # A first day of 120 customers holds them and their contracts; a next day a few changes.
    assert int(summary["first_records"]) > 120 and 0 < int(summary["next_records"]) < 100
