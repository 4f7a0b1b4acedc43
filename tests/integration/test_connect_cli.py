"""`syncbridge connect ameise` by hand: the pasted redirect address must carry this consent's state and a code.

The command runs as a process of its own against the Ameise simulator over
HTTP; the test plays the person: it opens the printed address (the simulator
consents at once), and pastes the address it was sent to — or another one.
"""
from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from simulators.ameise import AmeiseState, create_ameise_app
from simulators.server import ServerThread
from syncbridge.adapters.db import migrate
from syncbridge.adapters.db.sql import SqlStore

SYNCBRIDGE = str(Path(sys.executable).with_name("syncbridge"))
TIMEOUT = 60


@pytest.fixture(scope="module")
def ameise():
    with ServerThread(create_ameise_app(AmeiseState())) as server:
        yield server.url


@pytest.fixture
def env(ameise, tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SYNCBRIDGE_")}
    environ.update({"SYNCBRIDGE_DATABASE_URL": f"sqlite:///{tmp_path / 'syncbridge.db'}",
                    "SYNCBRIDGE_AMEISE_AUTH_URL": ameise, "SYNCBRIDGE_AMEISE_API_URL": ameise,
                    "PYTHONUNBUFFERED": "1"})
    migrate.upgrade(environ["SYNCBRIDGE_DATABASE_URL"])
    return environ


class Connect:
    """`syncbridge connect ameise` running; its output read line by line."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen([SYNCBRIDGE, "connect", "ameise", *args], env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)

    def consent_url(self) -> str:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.output.append(line)
            if line.strip().startswith("http"):
                return line.strip()
        self.process.kill()
        pytest.fail(f"no consent address printed: {''.join(self.output)}")

    def paste(self, text: str | None) -> tuple[int, str]:
        if text is not None:
            self.process.stdin.write(text + "\n")
        self.process.stdin.close()
        code = self.process.wait(timeout=TIMEOUT)
        self.reader.join(timeout=TIMEOUT)   # the pipe is closed: everything is in the queue
        while not self.lines.empty():
            self.output.append(self.lines.get())
        return code, "".join(self.output)


def sent_back(consent_url: str, **extra: str) -> str:
    """The address the simulator's consent redirects to (``extra`` changes the consent request)."""
    if extra:
        consent_url = f"{consent_url}&{urlencode(extra)}"
    answer = requests.get(consent_url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return parts._replace(query=urlencode(query)).geturl()


def ameise_status(env) -> tuple[str, str]:
    store = SqlStore.from_url(env["SYNCBRIDGE_DATABASE_URL"])
    try:
        return store.tokens.status("ameise")
    finally:
        store.engine.dispose()


def error_lines(output: str) -> list[str]:
    """click's "Error: ..." lines (the first follows the prompt on its line)."""
    return [line.split("Error: ", 1)[1] for line in output.splitlines() if "Error: " in line]


def test_the_address_of_this_consent_connects(env):
    connect = Connect(env)

    code, output = connect.paste(sent_back(connect.consent_url()))

    assert code == 0, output
    assert "Ameise connected for employee" in output
    assert ameise_status(env) == ("active", "")


@pytest.mark.parametrize(("change", "fragment"), [
    ({"state": "forged-state"}, "does not belong to this consent"),
    ({"state": None}, "does not belong to this consent"),
    ({"code": None}, "has no code"),
], ids=["other-state", "no-state", "no-code"])
def test_a_pasted_address_with_another_state_or_without_a_code_is_refused(env, change, fragment):
    connect = Connect(env)

    code, output = connect.paste(with_query(sent_back(connect.consent_url()), **change))

    assert code == 1, output
    [line] = error_lines(output)
    assert fragment in line and "Traceback" not in output
    assert ameise_status(env) == ("not_connected", "")


def test_the_address_of_another_consent_is_refused(env):
    first, second = Connect(env), Connect(env)
    first_url, second_url = first.consent_url(), second.consent_url()

    code, output = second.paste(sent_back(first_url))    # an address that was not made for this run
    first.paste(None)

    assert code == 1 and "does not belong to this consent" in output
    assert second_url != first_url and ameise_status(env) == ("not_connected", "")


def test_a_bare_code_is_not_a_redirect_address(env):
    connect = Connect(env)
    address = sent_back(connect.consent_url())

    code, output = connect.paste(parse_qs(urlsplit(address).query)["code"][0])

    assert code == 1 and "paste the whole address you were sent to" in output
    assert ameise_status(env) == ("not_connected", "")


def test_a_refused_consent_says_so(env):
    connect = Connect(env)

    code, output = connect.paste(sent_back(connect.consent_url(), login_hint="nobody"))

    assert code == 1
    [line] = error_lines(output)
    assert "Ameise did not give consent: access_denied unknown employee" in line


def test_code_option_takes_the_bare_code_only(env, ameise):
    address = sent_back(f"{ameise}/oauth2/auth?" + urlencode({
        "response_type": "code", "client_id": "dev-ameise-client", "scope": "ameise/mitarbeiterwebservice offline",
        "redirect_uri": "http://127.0.0.1:8000/connect/ameise/callback", "state": "s"}))
    bare = parse_qs(urlsplit(address).query)["code"][0]

    refused = subprocess.run([SYNCBRIDGE, "connect", "ameise", "--code", address], env=env, capture_output=True,
                             text=True, timeout=TIMEOUT)
    assert refused.returncode == 1 and "--code takes the bare code" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert ameise_status(env) == ("not_connected", "")

    taken = subprocess.run([SYNCBRIDGE, "connect", "ameise", "--code", bare], env=env, capture_output=True,
                           text=True, timeout=TIMEOUT)
    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert ameise_status(env) == ("active", "")
