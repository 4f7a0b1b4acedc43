"""`syncbridge run` (what `make run` starts) as a newcomer uses it: no settings, no accounts."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import requests

from simulators.stack import free_port
from tests.support.ameise import contact
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_run_starts_the_whole_flow_with_embedded_defaults(tmp_path):
    port, zoho_port, ameise_port, dashboard_port = free_port(), free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCBRIDGE_")}
    env["PATH"] = f"{os.path.dirname(sys.executable)}:{env.get('PATH', '')}"
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["syncbridge", "run", "--port", str(port), "--zoho-port", str(zoho_port), "--ameise-port", str(ameise_port),
             "--dashboard-port", str(dashboard_port)],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "Press Ctrl-C to stop" in log.read_text(), timeout=30, what="the banner")
        banner = log.read_text()
        assert "in-process broker" in banner
        database = re.search(r"database (sqlite:///\S+)", banner).group(1)
        zoho, ameise = f"http://127.0.0.1:{zoho_port}", f"http://127.0.0.1:{ameise_port}"

        # The dashboard is up, and the demo login the banner prints signs in.
        dashboard, user, password = re.search(r"dashboard\s+(\S+)\s+\(sign in as (\S+) / (\S+)\)", banner).groups()
        assert dashboard == f"http://127.0.0.1:{dashboard_port}"
        with requests.Session() as browser:
            form = browser.get(f"{dashboard}/login", timeout=5).text
            token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
            signed_in = browser.post(f"{dashboard}/login", data={"csrf_token": token, "username": user,
                                                                 "password": password}, timeout=10)
            assert signed_in.status_code == 200 and 'id="directions"' in signed_in.text

        # The first command the banner suggests, as printed.
        erika_url = re.search(r"-X PATCH (\S+)", banner).group(1)
        assert requests.patch(erika_url, json={"Phone": "+49 221 7654321"}, timeout=5).status_code == 200
        wait_for(lambda: contact(requests.get(f"{ameise}/_sim/kunden/5001234567", timeout=5).json(), "telefon")
                 == "+49 221 7654321", what="the edit in Ameise")

        jana = requests.post(f"{zoho}/_sim/records/Contacts", json={"First_Name": "Jana", "Last_Name": "Beispiel"},
                             timeout=5).json()["id"]
        number = wait_for(lambda: requests.get(f"{zoho}/_sim/records/Contacts/{jana}", timeout=5).json()
                          .get("Kundennummer"), what="Kundennummer written back")
        assert requests.get(f"{ameise}/_sim/kunden/{number}", timeout=5).json()["Person"]["Vorname"] == "Jana"

        activity = subprocess.run(["syncbridge", "activity"], env={**env, "SYNCBRIDGE_DATABASE_URL": database},
                                  capture_output=True, text=True, timeout=30)
        assert activity.returncode == 0
        assert re.search(rf"created\s+ok\s+customer Contacts/{jana} <-> {number}", activity.stdout), activity.stdout
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=20)
    assert code == 0, log.read_text()
    assert "Traceback" not in log.read_text()
    assert not Path(database.removeprefix("sqlite:///")).parent.exists()   # its temporary database is gone
