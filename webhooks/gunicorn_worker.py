"""The receiver's gunicorn worker and logger: JSON errors from the server itself, no query strings in logs.

``JsonGeventWorker`` is gunicorn's gevent worker (a waiting client holds a
greenlet, not a thread, so slow clients cannot use up the workers) whose answers
to requests gunicorn refuses before the app sees them (a bad request line, a line
or headers too long, an Expect it cannot meet, a malformed chunk size) are JSON
like every other error of the receiver, and name no part of the request.

``ScrubbingLogger`` is gunicorn's logger with query strings (where webhook secrets
may travel) and ``token=`` values removed from every line it writes, tracebacks
included.  Its access line, in the receiver's format, is written without
gunicorn's atoms (a dict of every header and environ entry per request), and
ends with the event the request queued (``webhooks.access_log``).

This module is imported by gunicorn's arbiter before its workers patch the standard
library for gevent: it imports nothing of the app.
"""
from __future__ import annotations

import json
import logging
import re
import time
import traceback

from gunicorn import glogging, util
from gunicorn.http import errors as http_errors
from gunicorn.workers.ggevent import GeventWorker

from webhooks.access_log import ACCESS_LOG_FORMAT, CARRIED, QUEUED

# A path's query string ("/x?token=..." -> "/x?<query removed>") and any "token=value".
_QUERY = re.compile(r"(/[^\s?\"'<>]*)\?[^\s\"'<>]*")
_TOKEN = re.compile(r"(?i)(token=)[^\s&\"'<>]*")

# (exception classes, status, reason, error, message): the first match wins.
_CLIENT_ERRORS: tuple[tuple[tuple[type[BaseException], ...], int, str, str, str], ...] = (
    ((http_errors.LimitRequestLine,), 414, "URI Too Long", "uri_too_long", "The request line is too long."),
    ((http_errors.LimitRequestHeaders,), 431, "Request Header Fields Too Large", "request_header_fields_too_large",
     "The request has too many headers, or one too long."),
    ((http_errors.ExpectationFailed,), 417, "Expectation Failed", "expectation_failed",
     "The Expect header cannot be met."),
    # RFC 9112 suggests 501, but a sender's unusable framing is no fault of the server.
    ((http_errors.UnsupportedTransferCoding,), 400, "Bad Request", "unsupported_transfer_coding",
     "The Transfer-Encoding is not supported; send the body with a Content-Length or chunked."),
    ((http_errors.ForbiddenProxyRequest,), 403, "Forbidden", "forbidden", "The request is forbidden."),
    ((http_errors.InvalidChunkSize, http_errors.ChunkMissingTerminator, http_errors.InvalidChunkExtension),
     400, "Bad Request", "malformed_body", "The body's chunked transfer encoding is malformed."),
    ((http_errors.InvalidRequestLine, http_errors.InvalidRequestMethod, http_errors.InvalidHTTPVersion),
     400, "Bad Request", "bad_request", "The request line is malformed."),
    # A header the app tried to send, or gunicorn's own configuration: the server's fault.
    ((http_errors.InvalidResponseHeader, http_errors.InvalidResponseHeaderName, http_errors.ConfigurationProblem),
     500, "Internal Server Error", "internal_error", "The request could not be processed; the error was logged."),
    ((http_errors.ParseException, ValueError), 400, "Bad Request", "bad_request",
     "The request is malformed (request line, headers or framing)."),
)


def scrub(text: str) -> str:
    """``text`` without query strings and ``token=`` values."""
    return _TOKEN.sub(r"\1<removed>", _QUERY.sub(r"\1?<query removed>", text))


def classify(exc: BaseException) -> tuple[int, str, str, str]:
    """(status, reason, error, message) of the answer to a request the server could not handle."""
    for classes, status, reason, error, message in _CLIENT_ERRORS:
        if isinstance(exc, classes):
            return status, reason, error, message
    return 500, "Internal Server Error", "internal_error", "The request could not be processed; the error was logged."


def json_error(status: int, reason: str, error: str, message: str) -> bytes:
    """A whole HTTP/1.1 answer with a JSON error body; the connection is closed after it."""
    body = json.dumps({"error": error, "message": message}).encode("utf-8")
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


class JsonGeventWorker(GeventWorker):
    """gunicorn's gevent worker answering the requests it refuses with JSON.

    When its access line carries what a request queued, the app is told so in each
    request's environ (``webhooks.access_log.CARRIED``) and writes no line of its own.
    """

    def load_wsgi(self) -> None:
        super().load_wsgi()
        if self.log.access_log_enabled and "%({" + QUEUED + "}e)s" in (self.cfg.access_log_format or ""):
            self.wsgi = _Carried(self.wsgi)

    def handle_error(self, req, client, addr, exc):  # noqa: ARG002 - gunicorn's signature
        status, reason, error, message = classify(exc)
        ip = (addr or ("", -1))[0]
        if status < 500:
            # The exception's text is the offending request line or header: scrubbed by the logger.
            self.log.warning("Invalid request from ip=%s: %s: %s", ip, type(exc).__name__, exc)
        else:
            self.log.exception("Error handling request %s %s", getattr(req, "method", "-"),
                               getattr(req, "path", "(no URI read)"))
        try:
            util.write_nonblock(client, json_error(status, reason, error, message))
        except Exception:  # noqa: BLE001 - the client may be gone already
            self.log.debug("Failed to send error message.")


def _quoted(value):
    return value.replace('"', '\\"') if isinstance(value, str) else value


class _ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub(record.getMessage()), None
        if record.exc_info:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text, record.exc_info = scrub(text), None
        return True


class ScrubbingLogger(glogging.Logger):
    """gunicorn's logger; no line it writes carries a query string or a token value."""

    _second = -1
    _stamp = ""

    def access(self, resp, req, environ, request_time) -> None:
        """The access line; in the receiver's format the same line as gunicorn's, built directly."""
        if not self.access_log_enabled:
            return
        if self.cfg.access_log_format != ACCESS_LOG_FORMAT:
            super().access(resp, req, environ, request_time)
            return
        try:
            status = resp.status
            if isinstance(status, str):
                status = status.split(None, 1)[0]
            sent = getattr(resp, "sent", None)
            # As gunicorn's SafeAtoms: a double quote in a value is escaped; a missing value is "-".
            seconds = f"{request_time.seconds}.{request_time.microseconds:06d}"
            self.access_log.info(
                f'{_quoted(environ.get("REMOTE_ADDR", "-"))} {self.now()} "{_quoted(environ.get("REQUEST_METHOD"))} '
                f'{_quoted(environ.get("PATH_INFO"))} {_quoted(environ.get("SERVER_PROTOCOL"))}" {status} '
                f'{sent is not None and str(sent) or "-"} {seconds}s {_quoted(environ.get(QUEUED, "-"))}')
        except Exception:  # noqa: BLE001 - as gunicorn: a failed access line is an error line, not a failed request
            self.error(traceback.format_exc())

    def now(self) -> str:
        """gunicorn's timestamp, formatted once a second rather than once a line."""
        second = int(time.time())
        if second != self._second:
            self._second, self._stamp = second, super().now()
        return self._stamp

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, _ScrubFilter) for f in log.filters):
                log.addFilter(_ScrubFilter())


class _Carried:
    """The app, told in each request's environ that the access line carries what the request queued."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        environ[CARRIED] = True
        return self.app(environ, start_response)

    def __getattr__(self, name: str):
        return getattr(self.app, name)   # the Flask app's extensions, for worker_exit
