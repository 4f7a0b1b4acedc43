"""Read request bodies within a deadline and exactly as long as announced.

WSGI middleware around the receiver.  It wraps ``wsgi.input`` so that

* a body must arrive within ``SYNCBRIDGE_BODY_READ_TIMEOUT`` seconds from the
  moment its headers were in (an authenticated upload: within that many seconds
  between two reads); a slower client gets 408 and its connection is not kept;
* a body that ends before its ``Content-Length`` (the sender closed its side) is
  400, never taken as the whole body;
* whatever else goes wrong while reading (a malformed chunk size, a broken
  connection) is 400 too, never a 500.

The deadline is enforced on the connection's socket where the server exposes it
(gunicorn's ``gunicorn.socket``), so a read never waits past it.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.exceptions import BadRequest, RequestTimeout

ENVIRON_KEY = "syncbridge.body"


class BodyTimeout(RequestTimeout):
    """The client did not send its body in time."""

    error = "body_timeout"


class IncompleteBody(BadRequest):
    """The body ended before its Content-Length, or the connection broke while reading it."""

    error = "incomplete_body"


class UnreadableBody(BadRequest):
    """The body's framing is malformed (e.g. an invalid chunk size)."""

    error = "malformed_body"


class BodyGuard:
    """WSGI middleware installing a :class:`GuardedInput` for every request."""

    def __init__(self, app: Callable, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        stream = environ.get("wsgi.input")
        if stream is not None:
            guarded = GuardedInput(stream, environ, self.timeout)
            environ["wsgi.input"] = environ[ENVIRON_KEY] = guarded
        return self.app(environ, start_response)


def allow_slow_body(environ: dict[str, Any]) -> None:
    """Let an authenticated request take its time, as long as no single read waits past the timeout."""
    guarded = environ.get(ENVIRON_KEY)
    if guarded is not None:
        guarded.deadline = None


class GuardedInput:
    """A request body stream that keeps to a deadline and to its Content-Length."""

    def __init__(self, stream: Any, environ: dict[str, Any], timeout: float) -> None:
        self._stream = stream
        self._timeout = timeout
        self._socket = environ.get("gunicorn.socket")
        self.deadline: float | None = time.monotonic() + timeout
        try:
            self._length: int | None = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            self._length = None
        self._received = 0

    # The file-like API WSGI promises (werkzeug reads with read/readline).
    def read(self, size: int | None = -1) -> bytes:
        whole = size is None or size < 0
        data = self._guarded(lambda: self._stream.read() if whole else self._stream.read(size))
        if self._length is not None and self._received < self._length and (whole or (not data and size)):
            raise IncompleteBody(f"The body ended after {self._received} of the {self._length} bytes "
                                 "its Content-Length announced.")
        return data

    def readline(self, size: int | None = -1) -> bytes:
        data = self._guarded(lambda: self._stream.readline(size if size is not None else -1))
        if self._length is not None and self._received < self._length and not data and size != 0:
            raise IncompleteBody(f"The body ended after {self._received} of the {self._length} bytes "
                                 "its Content-Length announced.")
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        return self.read().splitlines(keepends=True)

    def __iter__(self):
        while line := self.readline():
            yield line

    def close(self) -> None:
        pass

    def _guarded(self, read: Callable[[], bytes]) -> bytes:
        wait = self._timeout
        if self.deadline is not None:
            wait = self.deadline - time.monotonic()
            if wait <= 0:
                raise BodyTimeout("The body did not arrive in time.")
        previous = self._set_socket_timeout(wait)
        try:
            data = read()
        except TimeoutError:
            raise BodyTimeout("The body did not arrive in time.") from None
        except OSError:
            raise IncompleteBody("The connection broke while the body was read.") from None
        except Exception:  # noqa: BLE001 - the server's own parse errors of the framing (chunk sizes, ...)
            raise UnreadableBody("The body's transfer encoding is malformed.") from None
        finally:
            self._restore_socket_timeout(previous)
        self._received += len(data)
        return data

    def _set_socket_timeout(self, seconds: float) -> Any:
        if self._socket is None:
            return None
        try:
            previous = self._socket.gettimeout()
            self._socket.settimeout(max(seconds, 0.001))
            return previous
        except OSError:
            return None

    def _restore_socket_timeout(self, previous: Any) -> None:
        if self._socket is not None:
            try:
                self._socket.settimeout(previous)
            except OSError:
                pass
