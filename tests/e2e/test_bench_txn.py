"""bench/txn_count.py keeps working: it prints its summary line with a count for a create and an update."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_txn_count_prints_its_summary_line():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "txn_count.py"), "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[:2] == [f"create: created, {lines[-1].split()[0].split('=')[1]} transactions",
                         f"update: updated, {lines[-1].split()[1].split('=')[1]} transactions"]
    summary = dict(pair.split("=") for pair in lines[-1].split())
    assert set(summary) == {"create_txn", "update_txn"}
    assert all(int(value) > 0 for value in summary.values())
