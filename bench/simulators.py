"""CPU of one simulator process per request, under the calls a synced record makes.

Each simulator is started as the benchmarks serve it (``bench/crm_stack.py zoho|ameise --port P``, a
process of its own) and driven over keep-alive connections from a few threads with the calls of a
synced record, the headers as ``requests`` sends them:

* Zoho: ``GET /crm/v7/Contacts/{id}`` and the write-back ``PUT /crm/v7/Contacts`` (``{"data": [{"id",
  "Kundennummer"}], "trigger": []}``), each billed in the simulator's credits;
* Ameise: ``POST kunden`` (Person, Kontaktdaten) and ``PUT kunden/{nr}/adressen/0``; then, apart,
  ``GET kunden/_search?mail=`` (the look-up of a create that may have been interrupted) among the
  customers made;
* Ameise with every call waiting ``--delay`` seconds, from ``--delay-threads`` connections at once: the
  requests/s say whether the server still serves slow calls side by side.

CPU is user + system of the simulator's processes (the gunicorn arbiter and its worker) from /proc, per
request.  ``--before DIR`` runs a second copy of the code (``git archive <commit> | tar -x -C DIR``) in
turns with this one, round by round, each simulator started afresh each time; figures are medians.
``--worker-class`` serves this code's simulators another way (``crm_stack.py --worker-class``, e.g.
``gthread``); ``--before-worker-class`` the same for the other copy (when its crm_stack.py takes it).

    python bench/simulators.py [--records 1500] [--threads 4] [--rounds 3] [--before DIR] [--quick]

Summary: ``zoho_ms ameise_ms search_ms delay_rps`` (CPU ms per request, requests/s with delays), and
the same keys with ``_before`` and the ratios ``zoho_ratio ameise_ratio search_ratio`` with ``--before``.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.crm_stack import _die_with_parent, cpu_seconds, free_port, median, wait_until  # noqa: E402

ZOHO_CLIENT = ("dev-zoho-client", "dev-zoho-secret", "dev-zoho-refresh-token")
AMEISE_CLIENT = ("dev-ameise-client", "dev-ameise-secret")
AMEISE_API = "/service/bd/employee/1.0/rest/03A71H_XDSJKU"
KUNDENNUMMERN = itertools.count(5001234568)   # written back, one each (the field is unique)
# The headers requests sends with every call (its defaults), as the service's clients do.
BASE_HEADERS = {"User-Agent": "python-requests/2.32.3", "Accept-Encoding": "gzip, deflate", "Accept": "*/*",
                "Connection": "keep-alive"}


class Client:
    """One keep-alive connection; ``call`` answers (status, body bytes)."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {**BASE_HEADERS, **headers}

    def call(self, method: str, path: str, body: object = None, headers: dict[str, str] | None = None):
        sent = dict(self.headers, **(headers or {}))
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        self.connection.request(method, path, body=data, headers=sent)
        response = self.connection.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.connection.close()


class Simulator:
    """One simulator process of the code in ``root``."""

    def __init__(self, root: Path, kind: str, options: tuple[str, ...] = ()) -> None:
        self.kind, self.port = kind, free_port()
        env = {**os.environ, "PYTHONPATH": str(root)}
        self.process = subprocess.Popen([sys.executable, str(root / "bench" / "crm_stack.py"), kind, "--port",
                                         str(self.port), *options], cwd=root, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        wait_until(self._answers, 30, f"the {kind} simulator")

    def _answers(self) -> bool:
        try:
            client = Client(self.port, {})
            try:
                return client.call("GET", "/_sim/state")[0] == 200
            finally:
                client.close()
        except OSError:
            return False

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def in_threads(threads: int, items: list, work) -> float:
    """Run ``work(client_index, item)`` over ``items`` split among ``threads``; wall seconds."""
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            work(index, items[index::threads])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    started = time.perf_counter()
    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started


# ------------------------------------------------------------------ Zoho
def zoho_token(port: int) -> str:
    client_id, secret, refresh = ZOHO_CLIENT
    query = urlencode({"grant_type": "refresh_token", "client_id": client_id, "client_secret": secret,
                       "refresh_token": refresh})
    client = Client(port, {})
    status, body = client.call("POST", f"/oauth/v2/token?{query}")
    client.close()
    assert status == 200, body
    return json.loads(body)["access_token"]


def zoho_round(sim: Simulator, records: int, threads: int, tag: str) -> float:
    """CPU ms per request of GET + PUT write-back of ``records`` contacts (after a warm-up of 100)."""
    names = [f"Sim{tag}{n:06d}" for n in range(records + 100)]
    seeder = Client(sim.port, {})
    ids: list[str] = []
    for start in range(0, len(names), 500):
        chunk = [{"First_Name": "Bench", "Last_Name": name, "Email": f"{name.lower()}@example.de",
                  "Mailing_Street": "Benchweg 1", "Mailing_Zip": "50667", "Mailing_City": "Köln",
                  "Mailing_Country": "Deutschland"} for name in names[start:start + 500]]
        status, body = seeder.call("POST", "/_sim/seed", {"module": "Contacts", "records": chunk})
        assert status == 201, body
        ids += json.loads(body)["ids"]
    seeder.close()
    token = zoho_token(sim.port)
    clients = [Client(sim.port, {"Authorization": f"Zoho-oauthtoken {token}"}) for _ in range(threads)]
    numbers = {record_id: str(next(KUNDENNUMMERN)) for record_id in ids}

    def sync(index: int, chunk: list[str]) -> None:
        client = clients[index]
        for record_id in chunk:
            status, body = client.call("GET", f"/crm/v7/Contacts/{record_id}")
            assert status == 200, body
            status, body = client.call("PUT", "/crm/v7/Contacts",
                                       {"data": [{"id": record_id, "Kundennummer": numbers[record_id]}],
                                        "trigger": []})
            assert status == 200, body

    in_threads(threads, ids[:100], sync)
    before = sim.cpu()
    in_threads(threads, ids[100:], sync)
    used = sim.cpu() - before
    for client in clients:
        client.close()
    return used * 1000 / (2 * records)


# ------------------------------------------------------------------ Ameise
def ameise_token(port: int) -> str:
    """An access token of the default employee: the authorization-code flow, consented at once."""
    client_id, secret = AMEISE_CLIENT
    redirect = "http://127.0.0.1:9/callback"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/oauth2/auth?" + urlencode({
        "client_id": client_id, "redirect_uri": redirect, "response_type": "code", "state": "x",
        "scope": "ameise/mitarbeiterwebservice offline"}))
    response = connection.getresponse()
    response.read()
    assert response.status == 302, response.status
    code = parse_qs(urlsplit(response.getheader("Location") or "").query)["code"][0]
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    form = urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect})
    connection.request("POST", "/oauth2/token", body=form, headers={
        "Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 200, body
    return json.loads(body)["access_token"]


def ameise_clients(port: int, threads: int) -> list[Client]:
    token = ameise_token(port)
    return [Client(port, {"Authorization": f"Bearer {token}", "Accept": "application/json"}) for _ in range(threads)]


def _request_id() -> dict[str, str]:
    return {"X-Dio-Request-Id": os.urandom(16).hex()}


def ameise_round(sim: Simulator, records: int, threads: int, searches: int, tag: str) -> tuple[float, float]:
    """CPU ms per request of POST kunden + PUT adressen/0 of ``records`` customers, and of ``searches`` searches."""
    clients = ameise_clients(sim.port, threads)
    names = [f"Sim{tag}{n:06d}" for n in range(records + 100)]

    def sync(index: int, chunk: list[str]) -> None:
        client = clients[index]
        for name in chunk:
            status, body = client.call("POST", f"{AMEISE_API}/kunden", {
                "Anrede": "1", "Person": {"Typ": "natuerlich", "Vorname": "Bench", "Nachname": name},
                "Kontaktdaten": [{"Kontext": "privat", "Typ": "email", "Value": f"{name.lower()}@example.de"}]},
                _request_id())
            assert status == 201, body
            number = json.loads(body)["Id"]
            status, body = client.call("PUT", f"{AMEISE_API}/kunden/{number}/adressen/0", {
                "Strasse": "Benchweg 1", "Postleitzahl": "50667", "Ort": "Köln", "Land": "Deutschland"},
                _request_id())
            assert status == 200, body

    in_threads(threads, names[:100], sync)
    before = sim.cpu()
    in_threads(threads, names[100:], sync)
    write_ms = (sim.cpu() - before) * 1000 / (2 * records)

    wanted = [names[(n * 7919) % len(names)] for n in range(searches)]

    def search(index: int, chunk: list[str]) -> None:
        client = clients[index]
        for name in chunk:
            query = urlencode({"mail": f"{name.lower()}@example.de", "from": 0, "size": 100})
            status, body = client.call("GET", f"{AMEISE_API}/kunden/_search?{query}", None, _request_id())
            assert status == 200 and len(json.loads(body)) == 1, body

    before = sim.cpu()
    in_threads(threads, wanted, search)
    search_ms = (sim.cpu() - before) * 1000 / max(1, searches)
    for client in clients:
        client.close()
    return write_ms, search_ms


def delay_round(sim: Simulator, delay: float, threads: int, calls: int) -> float:
    """Requests/s of ``GET kunden/{nr}`` from ``threads`` connections while every call waits ``delay`` s."""
    clients = ameise_clients(sim.port, threads)
    status, body = clients[0].call("POST", f"{AMEISE_API}/kunden", {
        "Person": {"Typ": "natuerlich", "Vorname": "Slow", "Nachname": "Caller"}}, _request_id())
    assert status == 201, body
    number = json.loads(body)["Id"]
    admin = Client(sim.port, {})
    status, body = admin.call("POST", "/_sim/faults", {"status": None, "count": 10**9, "delay": delay})
    assert status == 201, body

    def read(index: int, chunk: list[int]) -> None:
        for _ in chunk:
            status, body = clients[index].call("GET", f"{AMEISE_API}/kunden/{number}", None, _request_id())
            assert status == 200, body

    wall = in_threads(threads, list(range(calls)), read)
    admin.call("DELETE", "/_sim/faults")
    admin.close()
    for client in clients:
        client.close()
    return calls / wall


# ------------------------------------------------------------------ rounds
def one_round(root: Path, options: tuple[str, ...], args: argparse.Namespace, tag: str) -> dict[str, float]:
    figures: dict[str, float] = {}
    zoho = Simulator(root, "zoho", options)
    try:
        figures["zoho_ms"] = zoho_round(zoho, args.records, args.threads, tag)
    finally:
        zoho.stop()
    ameise = Simulator(root, "ameise", options)
    try:
        figures["ameise_ms"], figures["search_ms"] = ameise_round(ameise, args.records, args.threads, args.searches,
                                                                  tag)
        figures["delay_rps"] = delay_round(ameise, args.delay, args.delay_threads, args.delay_calls)
    finally:
        ameise.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1500, help="synced records per simulator and round")
    parser.add_argument("--threads", type=int, default=4, help="keep-alive connections, one thread each")
    parser.add_argument("--searches", type=int, default=300, help="Ameise searches per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds every call waits in the delay check")
    parser.add_argument("--delay-threads", type=int, default=16)
    parser.add_argument("--delay-calls", type=int, default=320)
    parser.add_argument("--before", type=Path, help="a copy of the code to compare with, run in turns")
    parser.add_argument("--worker-class", help="crm_stack.py --worker-class for this code")
    parser.add_argument("--before-worker-class", help="crm_stack.py --worker-class for the code of --before")
    parser.add_argument("--quick", action="store_true", help="a run of well under a minute")
    args = parser.parse_args()
    if args.quick:
        args.records, args.searches, args.rounds, args.delay_calls = 300, 60, 1, 96

    def options(worker_class: str | None) -> tuple[str, ...]:
        return ("--worker-class", worker_class) if worker_class else ()

    versions = [("after", ROOT, options(args.worker_class))]
    if args.before:
        versions.append(("before", args.before.resolve(), options(args.before_worker_class)))
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in versions}
    for number in range(args.rounds):
        order = versions if number % 2 == 0 else versions[::-1]
        for name, root, served in order:
            figures = one_round(root, served, args, f"{number}{name[0]}")
            results[name].append(figures)
            load = os.getloadavg()[0]
            print(f"round={number + 1} code={name} " + " ".join(f"{k}={v:.3f}" for k, v in figures.items())
                  + f" load={load:.1f}", flush=True)

    summary: dict[str, float] = {}
    keys = ("zoho_ms", "ameise_ms", "search_ms", "delay_rps")
    for name, _, _ in versions:
        suffix = "" if name == "after" else "_before"
        for key in keys:
            summary[key + suffix] = median([r[key] for r in results[name]])
    if args.before:
        for key in ("zoho_ms", "ameise_ms", "search_ms"):
            summary[key.replace("_ms", "_ratio")] = summary[key] / summary[key + "_before"]
    print(" ".join(f"{k}={v:.3f}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
