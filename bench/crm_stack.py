"""What bench/scale.py and bench/e2e.py share: simulators, a database, the Procfile's processes.

Each simulator runs in a process of its own (``python bench/crm_stack.py zoho|ameise --port P``),
so neither shares an interpreter lock with the benchmark or with the other.  The Ameise
simulator notes the wall-clock time of every customer it creates, by ``Nachname``
(``GET /_bench/written``), which is when a record has reached Ameise.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"


# ------------------------------------------------------------------ simulators as processes
# How a simulator process serves: one gunicorn worker process (the simulator's state lives in it), gevent's
# WSGI server in it (a greenlet per connection: concurrent calls, a --delay of every call waits side by
# side), keep-alive connections, no access log.  The development server of `simulators.server` starts a
# thread for every connection and logs every request, which cost about as much CPU as the simulator's work;
# gunicorn's threaded worker (`--worker-class gthread`) hands every request from its poller thread to a
# pool thread and back, which costs more CPU per request than the greenlets (bench/simulators.py).
SERVER_WORKER_CLASS = "pywsgi"     # gevent's pywsgi without gunicorn's access-log record; or a gunicorn class
SERVER_THREADS = 32                # gthread only
SERVER_CONNECTIONS = 1000          # gevent only


def _pywsgi_worker():
    """gunicorn's gevent pywsgi worker whose handler skips the access-log record when there is no access log.

    gunicorn's handler builds the record for every request (all the request's headers decoded once more)
    and only then sees that nothing is logged.
    """
    from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

    class Handler(PyWSGIHandler):
        def log_request(self) -> None:
            if self.server.log.cfg.accesslog is not None:
                super().log_request()

    class Worker(GeventPyWSGIWorker):
        wsgi_handler = Handler

    return Worker


def simulator_app(kind: str):
    """The simulator's WSGI app with the demo seeded; the Ameise one notes when it creates a customer."""
    import threading

    from flask import Response, jsonify, request

    if kind == "zoho":
        from simulators.zoho import ZohoState, create_zoho_app
        from simulators.zoho import seed_demo as seed_zoho

        zoho_state = ZohoState()
        seed_zoho(zoho_state)
        return create_zoho_app(zoho_state)
    from simulators.ameise import AmeiseState, create_ameise_app
    from simulators.ameise import seed_demo as seed_ameise

    ameise_state = AmeiseState()
    seed_ameise(ameise_state)
    written: dict[str, list[float]] = {}
    firsts: list[str] = []                     # the names in the order they were first written
    counted: dict[str, tuple[int, int]] = {}   # prefix -> (names of firsts looked at, how many of them match)
    lock = threading.Lock()
    create = ameise_state.create_customer

    def create_customer(data, employee_id=None):
        answer = create(data, employee_id)
        name = str((data.get("Person") or {}).get("Nachname") or "")
        with lock:
            if name not in written:
                firsts.append(name)
            written.setdefault(name, []).append(time.time())
        return answer

    ameise_state.create_customer = create_customer  # type: ignore[method-assign]
    app = create_ameise_app(ameise_state)

    @app.get("/_bench/written")
    def bench_written():
        # Polled while a round runs: plain json.dumps (jsonify sorts the keys), so the polling adds little
        # to the simulator's CPU per record.
        prefix = request.args.get("prefix", "")
        with lock:
            chosen = {name: list(times) for name, times in written.items() if name.startswith(prefix)}
        return Response(json.dumps(chosen), content_type="application/json")

    @app.get("/_bench/count")
    def bench_count():
        # Polled often while a round runs: only the names written since the last count are looked at.
        prefix = request.args.get("prefix", "")
        with lock:
            seen, count = counted.get(prefix, (0, 0))
            count += sum(1 for name in firsts[seen:] if name.startswith(prefix))
            counted[prefix] = len(firsts), count
        return jsonify({"names": count})

    @app.post("/_bench/clear")
    def bench_clear():
        with lock:
            written.clear()
            firsts.clear()
            counted.clear()
        return jsonify({})

    return app


def serve(kind: str, port: int, worker_class: str = SERVER_WORKER_CLASS) -> None:
    """Serve one simulator until SIGTERM."""
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in {
                "bind": f"127.0.0.1:{port}", "workers": 1,
                "worker_class": _pywsgi_worker() if worker_class == "pywsgi" else worker_class,
                "threads": SERVER_THREADS, "worker_connections": SERVER_CONNECTIONS, "keepalive": 75, "timeout": 0,
                "graceful_timeout": 5, "accesslog": None, "loglevel": "warning",
                "when_ready": lambda server: print(f"serving {kind} on http://127.0.0.1:{port}", flush=True),
            }.items():
                self.cfg.set(key, value)

        def load(self):
            # In the worker, after a gevent worker has patched the standard library: the simulator's locks,
            # queues and threads are then gevent's.
            return simulator_app(kind)

    Server().run()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the benchmark that started it dies, even by SIGKILL (Linux).

    A benchmark killed on a timeout would otherwise leave its workers and simulators running,
    holding database connections and CPU.
    """
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code < 500
    except requests.RequestException:
        return False


class Simulators:
    """The two simulators, each a process; ``delay`` seconds on every Ameise web-service call."""

    def __init__(self, work: Path) -> None:
        self.zoho_port, self.ameise_port = free_port(), free_port()
        self.zoho_url = f"http://127.0.0.1:{self.zoho_port}"
        self.ameise_url = f"http://127.0.0.1:{self.ameise_port}"
        self.processes = [
            subprocess.Popen([sys.executable, __file__, kind, "--port", str(port)], cwd=ROOT,
                             stdout=open(work / f"{kind}.log", "wb"), stderr=subprocess.STDOUT,
                             preexec_fn=_die_with_parent)
            for kind, port in (("zoho", self.zoho_port), ("ameise", self.ameise_port))]
        wait_until(lambda: _answers(self.zoho_url + "/_sim/state") and _answers(self.ameise_url + "/_sim/state"),
                   30, "the simulators")

    def seed_contacts(self, names: list[str]) -> list[str]:
        """New CRM contacts (not yet in Ameise), one per name; their record ids."""
        ids: list[str] = []
        for start in range(0, len(names), 500):
            records = [{"First_Name": "Bench", "Last_Name": name, "Email": f"{name.lower()}@example.de",
                        "Mailing_Street": "Benchweg 1", "Mailing_Zip": "50667", "Mailing_City": "Köln",
                        "Mailing_Country": "Deutschland"} for name in names[start:start + 500]]
            answer = requests.post(self.zoho_url + "/_sim/seed", json={"module": "Contacts", "records": records},
                                   timeout=60)
            answer.raise_for_status()
            ids += answer.json()["ids"]
        return ids

    def set_delay(self, seconds: float, zoho: float = 0.0) -> None:
        """Every Ameise web-service call waits ``seconds`` from now on; with ``zoho``, every Zoho API call
        waits that long as well (the Zoho simulator keeps that to the end: it has no way to clear faults)."""
        requests.delete(self.ameise_url + "/_sim/faults", timeout=5).raise_for_status()
        if seconds:
            requests.post(self.ameise_url + "/_sim/faults", json={"status": None, "count": 10**9, "delay": seconds},
                          timeout=5).raise_for_status()
        if zoho:
            requests.post(self.zoho_url + "/_sim/faults", json={"status": None, "count": 10**9, "delay": zoho},
                          timeout=5).raise_for_status()

    def written(self, prefix: str = "") -> dict[str, list[float]]:
        """When the Ameise simulator created each customer, by ``Nachname`` (those starting with ``prefix``)."""
        return requests.get(self.ameise_url + "/_bench/written", params={"prefix": prefix}, timeout=30).json()

    def written_count(self, prefix: str = "") -> int:
        """How many customers whose ``Nachname`` starts with ``prefix`` the Ameise simulator created."""
        return requests.get(self.ameise_url + "/_bench/count", params={"prefix": prefix}, timeout=30).json()["names"]

    def zoho_usage(self) -> tuple[int, int]:
        """The API calls and the credits the Zoho simulator has billed so far (seeding bills none)."""
        state = requests.get(self.zoho_url + "/_sim/state", timeout=30).json()
        return state["api_calls"], state["credits_used"]

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


# ------------------------------------------------------------------ a database of the run's own
@contextmanager
def database(prefix: str):
    """A new PostgreSQL database on 127.0.0.1 for the run; dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pg_sessions(database: str) -> int:
    """Sessions ever opened on ``database`` (PostgreSQL's own count; a pool that closes connections shows here)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(POSTGRES_ADMIN_URL)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT sessions FROM pg_stat_database WHERE datname = :name"),
                                    {"name": database}).scalar() or 0)
    finally:
        engine.dispose()


def delete_queues(broker_url: str, namespace: str) -> None:
    from kombu import Connection

    from producers.topology import build_topology

    with Connection(broker_url) as connection:
        channel = connection.channel()
        for queue in build_topology(namespace).queues:
            channel.queue_delete(queue.name)
        for exchange in build_topology(namespace).exchanges if hasattr(build_topology(namespace), "exchanges") else ():
            channel.exchange_delete(exchange.name)


# ------------------------------------------------------------------ the Procfile's processes
def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def environment(sims: Simulators, database_url: str, namespace: str, broker_url: str, port: int,
                **settings: str) -> dict[str, str]:
    bin_dir = os.path.dirname(sys.executable)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "PORT": str(port),
        "SYNCBRIDGE_DATABASE_URL": database_url,
        "SYNCBRIDGE_BROKER_URL": broker_url,
        "SYNCBRIDGE_NAMESPACE": namespace,
        "SYNCBRIDGE_ZOHO_ACCOUNTS_URL": sims.zoho_url,
        "SYNCBRIDGE_AMEISE_AUTH_URL": sims.ameise_url,
        "SYNCBRIDGE_AMEISE_API_URL": sims.ameise_url + "/service/bd/employee/1.0/rest",
        "SYNCBRIDGE_AMEISE_VERMITTLER": "A1B2C3",
        "SYNCBRIDGE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        **{f"SYNCBRIDGE_{name.upper()}": value for name, value in settings.items()},
    }


def release(env: dict[str, str], root: Path = ROOT) -> None:
    """The release step and the operator's `syncbridge connect ameise` (``root``: the source tree to run)."""
    for command in (procfile()["release"], "syncbridge connect ameise --auto-consent"):
        done = subprocess.run(["bash", "-c", command], cwd=root, env=env, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{command}: {done.stderr[-2000:]}")


def start(name: str, env: dict[str, str], log: Path, root: Path = ROOT) -> subprocess.Popen:
    """The Procfile's process ``name``; ``root``: the source tree it runs (another needs PYTHONPATH=root in env)."""
    out = open(log, "ab")
    return subprocess.Popen(["bash", "-c", f"exec {procfile()[name]}"], cwd=root, env=env, stdout=out,
                            stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)


def stop(processes: list[subprocess.Popen], timeout: float = 30) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children so far (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
    except (OSError, IndexError, ValueError):
        return total
    try:
        children = [child_pid for child in Path(f"/proc/{pid}/task").glob("*/children")
                    for child_pid in child.read_text().split()]
    except OSError:      # the process (or one of its threads) ended meanwhile
        return total
    for child_pid in children:
        total += cpu_seconds(int(child_pid))
    return total


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="serve one simulator for the benchmarks")
    parser.add_argument("kind", choices=("zoho", "ameise"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--worker-class", default=SERVER_WORKER_CLASS,
                        help="pywsgi (the default, see SERVER_WORKER_CLASS) or a gunicorn worker class: gthread, gevent, ...")
    arguments = parser.parse_args()
    serve(arguments.kind, arguments.port, arguments.worker_class)
