"""Webhook ingest: requests per second into RabbitMQ with "202 means queued" kept.

Three contenders, each started with the Procfile's ``web`` line (gunicorn, its
config ``webhooks.gunicorn_config``, ``--workers 2``), only the app differs:

* ``syncbridge``: the receiver (``syncbridge.bootstrap:web_app()``): 202 only
  after the broker confirmed the persistent message;
* ``noop``: parses the JSON body, checks the token, answers 202 (``bench/ingest_apps.py``);
* ``obvious``: one kombu publish per request waiting for its confirm (``bench/ingest_apps.py``).

wrk (Debian's ``wrk``) posts Zoho workflow webhooks (``POST /webhooks/zoho/Contacts``,
JSON, token header) over ``--connections`` keep-alive connections for
``--seconds`` per round; the contenders take turns round by round (interleaved)
and each figure is the median of ``--rounds`` rounds.  After every round of a
publishing contender the messages in its quorum queue are counted: every 202 must
be a queued message (``queued >= accepted``; a few more may have been queued for
requests wrk stopped waiting for at the end).

    python bench/ingest.py               # 5 rounds of 8 s each, 32 connections
    python bench/ingest.py --quick       # 3 rounds of 3 s: under a minute
    python bench/ingest.py --before /tmp/old   # also the receiver of an older tree (``git archive``), in turn

With ``--before DIR`` a fourth contender, ``before``, is the receiver as the source
tree DIR has it (same venv), so an older commit and this one are measured side by
side in one run; a line ``before ...`` then compares them.

The last line: ``rps_syncbridge rps_noop rps_obvious ratio_noop ratio_obvious p99_ms``
(``p99_ms``: the receiver's 99th percentile latency, median over the rounds).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOKEN = "bench-ingest-token"
APPS = {
    "noop": "bench.ingest_apps:noop_app()",
    "obvious": "bench.ingest_apps:obvious_app()",
    "syncbridge": "syncbridge.bootstrap:web_app()",
    "before": "syncbridge.bootstrap:web_app()",
}
PUBLISHING = ("obvious", "syncbridge", "before")
WRK_SCRIPT = f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Webhook-Token"] = "{TOKEN}"
wrk.body = '{{"id": "4150868000000376008", "operation": "update", "modified_time": "2026-01-05T10:00:00+01:00"}}'
"""


def procfile_web() -> str:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))["web"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One contender: the Procfile's web line with ``app`` in place of the receiver."""

    def __init__(self, name: str, broker_url: str, namespace: str, work: Path, workers: int,
                 root: Path = ROOT) -> None:
        self.name, self.namespace = name, namespace
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = procfile_web().replace("'syncbridge.bootstrap:web_app()'", f"'{APPS[name]}'")
        env = {
            **os.environ,
            "PATH": f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(root),
            "PORT": str(self.port),
            "WEB_CONCURRENCY": str(workers),
            "SYNCBRIDGE_BROKER_URL": broker_url,
            "SYNCBRIDGE_NAMESPACE": namespace,
            "SYNCBRIDGE_ZOHO_WEBHOOK_TOKEN": TOKEN,
            "SYNCBRIDGE_DATABASE_URL": f"sqlite:///{work}/{name}.db",
        }
        self.log = work / f"{name}.log"
        with open(self.log, "wb") as out:
            # gunicorn puts its working directory first on sys.path: the tree's own code is loaded.
            self.process = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=root, env=env,
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/webhooks/zoho/Contacts", data=b"{}", timeout=2):
                    pass
            except urllib.error.HTTPError:
                return  # any HTTP answer (401 without token) means it listens
            except OSError:
                time.sleep(0.2)
                continue
            return
        raise RuntimeError(f"{self.name} did not answer within {timeout}s")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of gunicorn and its workers so far."""
        pids = [self.process.pid, *(int(pid) for pid in subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout.split())]
        return sum(process_cpu_seconds(pid) for pid in pids)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def process_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")   # utime + stime


def broker_cpu_seconds() -> float:
    """CPU time of the RabbitMQ node on this machine (shared with anyone else using it), 0 if not found."""
    pids = subprocess.run(["pgrep", "-f", "beam.*rabbit"], capture_output=True, text=True).stdout.split()
    return sum(process_cpu_seconds(int(pid)) for pid in pids)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def run_wrk(url: str, seconds: float, connections: int, threads: int, script: Path) -> dict:
    """One wrk run: requests/s, completed requests, non-2xx answers, socket errors, p50/p99 in ms."""
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s",
         "-s", str(script), f"{url}/webhooks/zoho/Contacts"],
        capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    figures = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "non2xx": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)) else 0,
        "p50_ms": _ms(re.search(r"\s50%\s+([\d.]+\w+)", out).group(1)),
        "p99_ms": _ms(re.search(r"\s99%\s+([\d.]+\w+)", out).group(1)),
    }
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    figures["socket_errors"] = sum(int(n) for n in errors.groups()) if errors else 0
    return figures


def queued(broker_url: str, namespace: str) -> int:
    """Messages in the namespace's crm-to-ameise queue, which is then purged."""
    from kombu import Connection

    from producers.topology import build_topology

    name = build_topology(namespace).crm_to_ameise.name
    with Connection(broker_url) as connection:
        channel = connection.channel()
        # Answers wrk stopped waiting for may still be confirmed: count once the queue stops growing.
        count, deadline = -1, time.monotonic() + 10
        while time.monotonic() < deadline:
            now = channel.queue_declare(name, passive=True).message_count
            if now == count:
                break
            count = now
            time.sleep(0.5)
        channel.queue_purge(name)
    return count


def delete_topology(broker_url: str, namespace: str) -> None:
    from kombu import Connection

    from producers.topology import build_topology

    topology = build_topology(namespace)
    with Connection(broker_url) as connection:
        channel = connection.channel()
        for queue in topology.queues:
            channel.queue_delete(queue.name)
        for exchange in topology.exchanges:
            channel.exchange_delete(exchange.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 3 s each (under a minute)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of one wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (WEB_CONCURRENCY)")
    parser.add_argument("--broker-url", default=os.environ.get("SYNCBRIDGE_BROKER_URL",
                                                               "amqp://guest:guest@127.0.0.1:5672//"))
    parser.add_argument("--only", choices=sorted(APPS), action="append", help="run only these contenders")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="also run the receiver of this source tree (e.g. an older commit's git archive)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = min(args.rounds, 3), min(args.seconds, 3.0)
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")

    work = Path(tempfile.mkdtemp(prefix="syncbridge-bench-ingest-"))
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT)
    names = [name for name in ("noop", "obvious", "syncbridge") if not args.only or name in args.only]
    if args.before is not None:
        names.append("before")
    namespaces = {name: f"bench-ingest-{name}-{uuid.uuid4().hex[:8]}" for name in names}
    servers: dict[str, Server] = {}
    results: dict[str, list[dict]] = {name: [] for name in names}
    try:
        for name in names:
            root = args.before.resolve() if name == "before" else ROOT
            servers[name] = Server(name, args.broker_url, namespaces[name], work, args.workers, root)
        for server in servers.values():
            server.wait_ready()
        for name in names:   # warm up: connections to the broker opened, code paths loaded
            run_wrk(servers[name].url, 1, args.connections, args.threads, script)
            if name in PUBLISHING:
                queued(args.broker_url, namespaces[name])
        for round_no in range(1, args.rounds + 1):
            order = names if round_no % 2 else list(reversed(names))
            for name in order:
                cpu, broker = servers[name].cpu_seconds(), broker_cpu_seconds()
                figures = run_wrk(servers[name].url, args.seconds, args.connections, args.threads, script)
                requests = max(figures["requests"], 1)
                # CPU per request: of the contender's processes, and of the broker (which others may share).
                figures["web_cpu_ms"] = (servers[name].cpu_seconds() - cpu) * 1000 / requests
                figures["broker_cpu_ms"] = (broker_cpu_seconds() - broker) * 1000 / requests
                figures["accepted"] = figures["requests"] - figures["non2xx"]
                if name in PUBLISHING:
                    figures["queued"] = queued(args.broker_url, namespaces[name])
                results[name].append(figures)
                print(f"round={round_no} contender={name} " + " ".join(
                    f"{key}={value:.1f}" if isinstance(value, float) else f"{key}={value}"
                    for key, value in figures.items()), flush=True)
    finally:
        for server in servers.values():
            server.stop()
        for name in names:
            if name in PUBLISHING:
                try:
                    delete_topology(args.broker_url, namespaces[name])
                except Exception as exc:  # noqa: BLE001 - report, keep the figures
                    print(f"could not delete {namespaces[name]}: {exc}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name]) if results.get(name) else 0.0

    for name in PUBLISHING:
        if name in results:
            accepted = sum(r["accepted"] for r in results[name])
            queued_total = sum(r["queued"] for r in results[name])
            unmatched = sum(max(0, r["accepted"] - r["queued"]) for r in results[name])
            errors = sum(r["non2xx"] + r["socket_errors"] for r in results[name])
            print(f"contender={name} accepted={accepted} queued={queued_total} unmatched_202={unmatched} "
                  f"errors={errors} p50_ms={median(name, 'p50_ms'):.2f} p99_ms={median(name, 'p99_ms'):.2f}")
    for name in names:
        print(f"cpu contender={name} rps={median(name, 'rps'):.0f} web_cpu_ms_per_request={median(name, 'web_cpu_ms'):.3f} "
              f"broker_cpu_ms_per_request={median(name, 'broker_cpu_ms'):.3f}")
    if "before" in results:
        before = median("before", "rps")
        print(f"before rps_before={before:.0f} rps_syncbridge={median('syncbridge', 'rps'):.0f} "
              f"ratio_before={median('syncbridge', 'rps') / before if before else 0:.2f} "
              f"ratio_noop_before={before / median('noop', 'rps') if median('noop', 'rps') else 0:.2f} "
              f"web_cpu_ms_before={median('before', 'web_cpu_ms'):.3f} "
              f"web_cpu_ms_syncbridge={median('syncbridge', 'web_cpu_ms'):.3f}")
    rps = {name: median(name, "rps") for name in ("syncbridge", "noop", "obvious")}
    summary = {
        "rps_syncbridge": f"{rps['syncbridge']:.0f}",
        "rps_noop": f"{rps['noop']:.0f}",
        "rps_obvious": f"{rps['obvious']:.0f}",
        "ratio_noop": f"{rps['syncbridge'] / rps['noop']:.2f}" if rps["noop"] else "0",
        "ratio_obvious": f"{rps['syncbridge'] / rps['obvious']:.2f}" if rps["obvious"] else "0",
        "p99_ms": f"{median('syncbridge', 'p99_ms'):.1f}",
    }
    print(" ".join(f"{key}={value}" for key, value in summary.items()), flush=True)


if __name__ == "__main__":
    main()
