"""Network helpers: a TCP proxy that can cut connections, closing RabbitMQ connections, consuming queues."""
from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from urllib.parse import urlsplit

from kombu import Connection, Queue


def consume_all(url: str, queue: Queue, *, expect: int, timeout: float = 3.0) -> list:
    """Take ``expect`` messages from ``queue`` (acked); fewer if they do not arrive in time."""
    messages = []
    deadline = time.monotonic() + timeout
    with Connection(url) as conn:
        simple = conn.SimpleQueue(queue, accept=["application/json"])
        while len(messages) < expect and time.monotonic() < deadline:
            try:
                message = simple.get(block=True, timeout=0.2)
            except simple.Empty:
                continue
            message.ack()
            messages.append(message)
        simple.close()
    return messages


def close_connections_named(fragment: str) -> None:
    """Have RabbitMQ close (320 CONNECTION_FORCED) every connection whose name contains ``fragment``."""
    rabbitmqctl = shutil.which("rabbitmqctl")
    assert rabbitmqctl, "this test needs rabbitmqctl on PATH to make the broker close a connection"
    listing = subprocess.run(
        [rabbitmqctl, "list_connections", "-q", "--no-table-headers", "pid", "client_properties"],
        capture_output=True, text=True, check=True, timeout=30,
    )
    pids = [line.split("\t")[0] for line in listing.stdout.splitlines() if fragment in line]
    assert pids, f"no broker connection named after {fragment!r}"
    for pid in pids:
        subprocess.run([rabbitmqctl, "close_connection", pid, "closed by test"],
                       capture_output=True, check=True, timeout=30)


class TcpProxy:
    """A loopback TCP proxy to the broker that can cut its connections or stop passing answers."""

    def __init__(self, broker_url: str) -> None:
        parts = urlsplit(broker_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5672)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = broker_url.replace(f"{parts.hostname}:{parts.port or 5672}",
                                      f"127.0.0.1:{self._listener.getsockname()[1]}")
        self._sockets: list[socket.socket] = []
        self._open = threading.Event()
        self._open.set()  # cleared while frozen
        self._closed = False

    def __enter__(self) -> TcpProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._closed = True
        self._open.set()
        self._listener.close()
        self.cut()

    def cut(self) -> None:
        """Close every proxied connection at once, as a crashed broker or a dropped link would."""
        for sock in list(self._sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self._sockets.clear()

    def freeze(self) -> None:
        self._open.clear()

    def thaw(self) -> None:
        self._open.set()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, from_broker: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if from_broker:
                    self._open.wait()
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
