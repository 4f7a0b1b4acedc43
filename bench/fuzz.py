"""The fuzz suite, long: the tests' own hypothesis fuzz tests with many more examples, and their counts.

The same tests run in ``make test`` with a modest number of examples; here every
example count is multiplied by ``--scale`` (``SYNCBRIDGE_FUZZ_SCALE``).  The
figures come from hypothesis' statistics: examples run per test and what they
ended in (HTTP status, ``read`` / ``rejected`` for the DailyUp reader, ``closed``
for a raw connection the server closed without an answer).  Each test asserts
no 5xx, JSON error bodies, bounded time per input, and that every 202 queued
exactly one message per event; a failure ends this script with exit code 1.

    python bench/fuzz.py                 # scale 20: about 40,000 inputs, a few minutes on 2 cores
    python bench/fuzz.py --scale 100
    python bench/fuzz.py --quick         # under a minute, the same figures

Needs RabbitMQ and PostgreSQL on 127.0.0.1, as the tests do.  The last line is a
summary of ``key=value`` pairs.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What each fuzz test throws at which part of the service.
SUITES = {
    "webhooks": "tests/unit/test_webhooks_fuzz.py",
    "raw-http": "tests/integration/test_receiver_gunicorn.py::test_fuzzed_raw_requests_get_json_or_a_closed_connection",
    "admin": "tests/unit/test_admin_fuzz.py",
    "admin-postgres": "tests/integration/test_admin_postgres.py::test_no_admin_request_gets_a_5xx_on_postgresql",
    "dailyup-reader": "tests/unit/test_dailyup_reader_fuzz.py",
    "echo-property": "tests/integration/test_echo_property.py",
}
QUICK_SUITES = ("webhooks", "admin", "dailyup-reader")

_TEST = re.compile(r"^(tests/\S+::\S+):$")
_PHASE = re.compile(r"^\s+- during (\w+) phase")
_CASES = re.compile(r"^\s+- (\d+) passing, (\d+) failing, and (\d+) invalid test cases")
_EVENT = re.compile(r"^\s+\* ([\d.]+)%, outcome (\S+)")


def parse_statistics(output: str) -> dict[str, dict]:
    """Per test: examples run in the generate phase and the estimated count of each outcome."""
    tests: dict[str, dict] = {}
    current: dict | None = None
    phase = ""
    for line in output.splitlines():
        if match := _TEST.match(line):
            current = tests.setdefault(match.group(1), {"examples": 0, "failing": 0, "outcomes": Counter()})
            phase = ""
        elif current is None:
            continue
        elif match := _PHASE.match(line):
            phase = match.group(1)
        elif phase == "generate" and (match := _CASES.match(line)):
            passing, failing, invalid = map(int, match.groups())
            current["examples"] += passing + failing
            current["failing"] += failing
            current["_cases"] = passing + failing + invalid
        elif phase == "generate" and (match := _EVENT.match(line)):
            share = float(match.group(1)) / 100
            current["outcomes"][match.group(2)] += round(share * current.get("_cases", 0))
    return tests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=20.0, help="factor on every fuzz test's example count")
    parser.add_argument("--quick", action="store_true", help="the unit-tier suites at scale 1: under a minute")
    parser.add_argument("--suite", action="append", choices=sorted(SUITES), help="run only these suites")
    args = parser.parse_args()
    scale = 1.0 if args.quick else args.scale
    names = args.suite or (list(QUICK_SUITES) if args.quick else list(SUITES))

    env = {**os.environ, "SYNCBRIDGE_FUZZ_SCALE": str(scale)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics",
               "--timeout", "0", *(SUITES[name] for name in names)]
    print(f"fuzzing {', '.join(names)} at scale {scale:g}", flush=True)
    started = time.monotonic()
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    tests = parse_statistics(run.stdout)

    total_examples, total_failing = 0, 0
    outcomes: Counter[str] = Counter()
    for name, figures in sorted(tests.items()):
        total_examples += figures["examples"]
        total_failing += figures["failing"]
        outcomes.update(figures["outcomes"])
        shown = ", ".join(f"{k} {v}" for k, v in sorted(figures["outcomes"].items())) or "-"
        print(f"  {figures['examples']:>7} examples  {name.split('::')[-1]}\n           outcomes: {shown}")
    server_errors = sum(v for k, v in outcomes.items() if k.isdigit() and int(k) >= 500)
    if run.returncode != 0:
        print(run.stdout[-4000:], run.stderr[-2000:], sep="\n", file=sys.stderr)
    summary = {
        "scale": f"{scale:g}", "tests": len(tests), "examples": total_examples, "failing": total_failing,
        "status_5xx": server_errors, "accepted_202": outcomes.get("202", 0),
        "rejected_4xx": sum(v for k, v in outcomes.items() if k.isdigit() and 400 <= int(k) < 500),
        "reader_rejected": outcomes.get("rejected", 0), "reader_read": outcomes.get("read", 0),
        "closed": outcomes.get("closed", 0), "seconds": round(seconds), "pytest_exit": run.returncode,
    }
    print(" ".join(f"{k}={v}" for k, v in summary.items()))
    return 0 if run.returncode == 0 and tests else 1


if __name__ == "__main__":
    sys.exit(main())
