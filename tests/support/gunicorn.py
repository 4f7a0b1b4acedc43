"""The receiver under gunicorn as its Procfile starts it, and raw HTTP exchanges with it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests
from kombu import Connection

from producers.topology import build_topology
from simulators.stack import free_port
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


TOKEN = "gunicorn-webhook-token"


def procfile_web() -> str:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))["web"]


class Web:
    """`web` of the Procfile as a subprocess, with its output in a file."""

    def __init__(self, rabbitmq_url: str, namespace: str, log: Path, **extra_env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.namespace = namespace
        env = {
            **os.environ,
            "PATH": f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '')}",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": "1",
            "SYNCBRIDGE_BROKER_URL": rabbitmq_url,
            "SYNCBRIDGE_NAMESPACE": namespace,
            "SYNCBRIDGE_ZOHO_WEBHOOK_TOKEN": TOKEN,
            "SYNCBRIDGE_BODY_READ_TIMEOUT": str(BODY_READ_TIMEOUT),
            **extra_env,
        }
        with open(log, "wb") as out:
            self.process = subprocess.Popen(["bash", "-c", f"exec {procfile_web()}"], cwd=ROOT, env=env,
                                            stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        def answers() -> bool:
            assert self.process.poll() is None, self.output()
            try:
                return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except (requests.ConnectionError, requests.Timeout):   # not listening yet, or still loading the app
                return False
        wait_for(answers, timeout=30, interval=0.2, what=f"{self.url}/healthz")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def drain(rabbitmq_url: str, namespace: str, *, settle: float = 0.3) -> list[dict]:
    """Take every message waiting in crm-to-ameise (after ``settle`` seconds without a new one)."""
    payloads = []
    with Connection(rabbitmq_url) as conn:
        simple = conn.SimpleQueue(build_topology(namespace).crm_to_ameise, accept=["application/json"])
        while True:
            try:
                message = simple.get(block=True, timeout=settle)
            except simple.Empty:
                break
            message.ack()
            payloads.append(message.payload)
        simple.close()
    return payloads


def parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body[: int(headers.get("content-length", len(body)))]


BODY_READ_TIMEOUT = 2.0
