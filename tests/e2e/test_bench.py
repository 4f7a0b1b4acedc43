"""The benchmarks, small: each still runs end to end and prints its figures."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_dailyup_benchmark_prints_its_summary(rabbitmq_url):
    # Smaller than --quick (20000 rows): the same code paths and keys in a third of the time.
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "dailyup.py"), "--rows", "5000", "--broker-url",
                          rabbitmq_url],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)

    assert run.returncode == 0, run.stderr[-2000:]
    summary = dict(pair.split("=", 1) for pair in run.stdout.strip().splitlines()[-1].split())
    for key in ("first_rows_s", "next_rows_s", "peak_rss_mb", "publish_msgs_s", "floor_rows_s", "first_cpu_rows_s",
                "next_cpu_rows_s", "floor_cpu_rows_s", "first_pg_us_row", "publish_us_msg", "publish_broker_us_msg"):
        assert float(summary[f"{key}_5k"]) > 0, key
    assert 0 < float(summary["next_vs_floor_5k"]) and 0 < float(summary["first_vs_floor_5k"])
    assert 0 <= float(summary["first_gc_share_5k"]) < 1
    # No rate passes the one at which its processes' CPU would fill every core (tolerance: /proc counts in ticks).
    assert 0 < float(summary["first_rows_s_5k"]) <= 1.5 * float(summary["first_cpu_bound_rows_s_5k"])
    assert 0 < float(summary["publish_msgs_s_5k"]) <= 1.5 * float(summary["publish_cpu_bound_msgs_s_5k"])
    # About 5000 rows; every delta of the first day confirmed is in the return queue, none lost.
    assert 4_500 < int(summary["rows_5k"]) < 5_500
    assert int(summary["published_5k"]) == int(summary["queued_5k"]) >= int(summary["rows_5k"])
    assert int(summary["next_deltas_5k"]) > 0


def test_the_fuzz_benchmark_prints_its_counts():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "fuzz.py"), "--quick", "--suite", "dailyup-reader"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)

    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    summary = dict(pair.split("=", 1) for pair in run.stdout.strip().splitlines()[-1].split())
    assert summary["pytest_exit"] == "0" and summary["failing"] == "0" and summary["status_5xx"] == "0"
    # Every test of the suite ran (counted in its file, so that a new one is expected too).
    suite = (ROOT / "tests" / "unit" / "test_dailyup_reader_fuzz.py").read_text()
    assert int(summary["tests"]) == len(re.findall(r"^def test_", suite, re.MULTILINE)) >= 4
    # Every example of the reader ends in rows or a rejection; the counts come from rounded shares.
    counted = int(summary["reader_read"]) + int(summary["reader_rejected"])
    assert abs(counted - int(summary["examples"])) <= 3 and counted > 0, summary


def test_the_events_benchmark_prints_its_summary_and_reads_pages_through_the_indexes(postgres_url):
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "events.py"), "--rows", "20000", "--rounds", "3",
                          "--database-url", postgres_url], capture_output=True, text=True, timeout=300, cwd=ROOT)

    assert run.returncode == 0, run.stderr[-2000:]
    summary = dict(pair.split("=", 1) for pair in run.stdout.strip().splitlines()[-1].split())
    assert summary["rows"] == "20000"
    for key in ("first_page_ms", "deep_page_ms", "filtered_ms", "text_ms", "http_first_ms", "http_deep_ms",
                "http_filtered_ms", "http_text_ms"):
        assert float(summary[key]) > 0, key
    # No page scans the table: the newest first through the Events index, a filter through its own.
    assert summary["first_page_index"] == "ix_activity_log_events"
    assert summary["filtered_index"].startswith("ix_activity_log_events")
    assert summary["deep_page_index"].startswith("ix_activity_log_")
    assert summary["text_index"] != "none"


def test_the_linking_benchmark_finds_the_twins_and_creates_no_duplicate():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "linking.py"), "--quick"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)

    assert run.returncode == 0, run.stderr[-2000:]
    figures = dict(item.split("=", 1) for item in run.stdout.split())
    assert (figures["ameise"], figures["crm"]) == ("500", "500")
    assert float(figures["precision_certain"]) == 1.0 and float(figures["precision"]) >= 0.99
    assert float(figures["recall_with_ambiguous"]) >= 0.98 and float(figures["contract_recall"]) >= 0.98
    assert int(figures["accepted"]) > 0 and int(figures["delivery_created"]) > 0
    assert figures["duplicates_created"] == "0"


def test_the_startup_benchmark_prints_its_summary(rabbitmq_url):
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "startup.py"), "--quick", "--broker-url", rabbitmq_url],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)

    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    summary = dict(pair.split("=", 1) for pair in run.stdout.strip().splitlines()[-1].split())
    assert list(summary) == ["import_s", "ready_s_1", "ready_s_2", "ready_s_4"]
    # A worker imports the service before it consumes: each start takes longer than the import alone.
    assert 0 < float(summary["import_s"]) < min(float(summary[f"ready_s_{n}"]) for n in (1, 2, 4))
