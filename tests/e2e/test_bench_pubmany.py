"""The bulk-publish benchmark, small: both contenders publish, every confirmed message is queued."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.rabbitmq


def test_the_publish_benchmark_prints_its_summary(rabbitmq_url):
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "publish.py"), "--quick", "--broker-url", rabbitmq_url],
                         capture_output=True, text=True, timeout=110, cwd=ROOT)

    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    summary = dict(pair.split("=", 1) for pair in run.stdout.strip().splitlines()[-1].split())
    assert set(summary) == {"publish_msgs_s", "tutorial_msgs_s", "ratio_tutorial", "lost", "broker_us_msg",
                            "tutorial_broker_us_msg", "direct_msgs_s", "direct_broker_us_msg"}
    assert summary["lost"] == "0"
    assert all(float(value) > 0 for key, value in summary.items() if key != "lost"), summary
    rounds = [line for line in run.stdout.splitlines() if line.startswith("  round")]
    # Three rounds of each contender, every one with all 10000 confirmed messages in the queue.
    assert len(rounds) == 9 and all("10000 queued" in line for line in rounds)
    assert {line.split()[2].rstrip(":") for line in rounds} == {"syncbridge", "tutorial", "direct"}
