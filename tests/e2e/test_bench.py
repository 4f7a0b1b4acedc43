"""The benchmarks, small: each still runs end to end and prints its figures."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_dailyup_benchmark_prints_its_figures(rabbitmq_url):
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "dailyup.py"), "--rows", "3000",
                          "--zoho-customers", "300", "--broker-url", rabbitmq_url],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)

    assert run.returncode == 0, run.stderr[-2000:]
    figures = {}
    for line in run.stdout.splitlines():
        if line.startswith("  "):
            name, _, value = line.strip().partition(" ")
            figures[name] = value.strip()
    assert int(figures["import_rows_per_s"]) > 0 and int(figures["diff_rows_per_s"]) > 0
    assert int(figures["publish_msg_per_s"]) > 0 and figures["broker"] == "amqp"
    assert int(figures["published"]) == int(figures["pending_before"]) > 3000
    assert float(figures["peak_mb"]) > 0
    day1 = ast.literal_eval(figures["day1"])
    # Full batches: one upsert of 100 records costs 10 credits.
    assert day1["records_per_credit"] >= 8, day1


def test_the_fuzz_benchmark_prints_its_counts():
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "fuzz.py"), "--quick", "--suite", "dailyup-reader"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)

    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    summary = dict(pair.split("=", 1) for pair in run.stdout.strip().splitlines()[-1].split())
    assert summary["pytest_exit"] == "0" and summary["failing"] == "0" and summary["status_5xx"] == "0"
    assert int(summary["tests"]) == 3
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
