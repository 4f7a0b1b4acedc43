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
    assert set(summary) == {"publish_msgs_s", "tutorial_msgs_s", "ratio_tutorial", "lost"}
    assert summary["lost"] == "0"
    assert float(summary["publish_msgs_s"]) > 0 and float(summary["tutorial_msgs_s"]) > 0
    rounds = [line for line in run.stdout.splitlines() if line.startswith("  round")]
    # Three rounds of each contender, every one with all 10000 confirmed messages in the queue.
    assert len(rounds) == 6 and all(line.endswith("10000 queued") for line in rounds)
