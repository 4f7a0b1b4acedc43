"""`make run` as a newcomer meets it: the hints it prints and the README's curl line work as printed.

The demo is started as the Makefile starts it (`.venv/bin/syncbridge run` from the
repository root) with the venv NOT on the PATH, as in a fresh shell.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from simulators.stack import free_port
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
BIN = os.path.dirname(sys.executable)


def without_venv(path: str) -> str:
    return os.pathsep.join(p for p in path.split(os.pathsep) if p and os.path.abspath(p) != os.path.abspath(BIN))


@pytest.fixture
def demo(tmp_path):
    """``.venv/bin/syncbridge run`` from the repository root; yields (banner, environment, receiver URL)."""
    port, zoho_port, ameise_port, dashboard_port = free_port(), free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCBRIDGE_")}
    env["PATH"] = without_venv(env.get("PATH", "/usr/bin:/bin"))
    # The daily time has passed when the demo starts (as for anyone trying it after 00:00 UTC).
    env["SYNCBRIDGE_DAILYUP_AT"] = "00:00"
    program = os.path.relpath(os.path.join(BIN, "syncbridge"), ROOT)
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [program, "run", "--port", str(port), "--zoho-port", str(zoho_port), "--ameise-port", str(ameise_port),
             "--dashboard-port", str(dashboard_port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "Press Ctrl-C to stop" in log.read_text(), timeout=30, what="the banner")
        yield log.read_text(), env, f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=20)
    assert code == 0, log.read_text()
    assert "Traceback" not in log.read_text()


def shell(command: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def activity_hint(banner: str) -> str:
    return next(line.strip() for line in banner.splitlines() if line.strip().startswith("SYNCBRIDGE_DATABASE_URL="))


def test_the_printed_activity_command_works_without_the_venv_on_the_path(demo):
    banner, env, _ = demo
    hint = activity_hint(banner)
    assert shell("command -v syncbridge", env).returncode != 0          # really not on the PATH

    shown = shell(hint, env)

    assert shown.returncode == 0, f"{hint}\n{shown.stderr}"
    assert hint.split()[1] == os.path.join(".venv", "bin", "syncbridge") or Path(hint.split()[1]).is_absolute()


def test_a_fresh_demo_starts_without_an_error_in_the_activity_log(demo):
    banner, env, _ = demo
    inbox = Path(re.search(r"drop the ZIP into (\S+/inbox)/", banner).group(1))
    # Two rounds of the DailyUp worker: a file it rejects each round shows that the first round's
    # look for today's delivery (due since 00:00) has run.
    for name in ("first.zip", "second.zip"):
        (inbox / name).write_bytes(b"not a delivery")
        os.utime(inbox / name, (0, 0))
        wait_for(lambda name=name: not (inbox / name).exists(), timeout=30, what=f"{name} taken")

    errors = shell(activity_hint(banner) + " --result error --json", env)

    assert errors.returncode == 0, errors.stderr
    # The one error the demo makes on purpose: Paul Fehler's four-digit PLZ, the dead letter of the dashboard's pages.
    paul = re.search(r"Contacts/(\d+) \\\n\s+-H 'Content-Type: application/json' -d '\{\"Mailing_Zip\"", banner).group(1)
    unexpected = [line for line in errors.stdout.splitlines() if json.loads(line)["zoho_id"] != paul]
    assert unexpected == [], unexpected                          # no "no DailyUp delivery for ... by 00:00 UTC"


def test_the_readme_webhook_curl_line_queues_an_event_that_reaches_ameise(demo):
    banner, env, receiver = demo
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(curl -s -X POST http://127\.0\.0\.1:8000/webhooks/zoho/.*?)\n#", readme, re.S).group(1)

    fired = shell(block.replace("http://127.0.0.1:8000", receiver), env)

    assert fired.returncode == 0 and '"status":"queued"' in fired.stdout.replace(" ", ""), fired.stdout + fired.stderr
    hint = activity_hint(banner)
    wait_for(lambda: re.search(r"crm_to_ameise\s+updated\s+ok\s+customer Contacts/5725767000000401003 <-> 5001234567",
                               shell(hint, env).stdout), timeout=30, interval=0.3, what="the webhook's sync")
