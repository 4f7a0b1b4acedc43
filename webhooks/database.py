"""The database behind the admin API and the DailyUp routes: opened on first use, 503 (not 500) when it is down."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from flask import Blueprint
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import ServiceUnavailable

from syncbridge.errors import SchemaOutdated
from webhooks.errors import error_response

log = logging.getLogger("syncbridge.webhooks")
T = TypeVar("T")

# Seconds a caller is asked to wait before it tries again.
RETRY_AFTER_S = 30
# Connection refused or lost, server gone, pool exhausted, file not openable or locked.
CONNECTIVITY_ERRORS = (OperationalError, InterfaceError, PoolTimeout)


class DatabaseUnavailable(ServiceUnavailable):
    """503 with Retry-After; the body never carries the driver's text (host, port, user)."""

    error = "unavailable"

    def __init__(self, message: str = "The database is unavailable; try again later.") -> None:
        super().__init__(message, retry_after=RETRY_AFTER_S)


def database_unavailable(exc: BaseException) -> DatabaseUnavailable:
    """Log why, in one line, and return the 503 to raise."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    log.warning("database unavailable: %s: %s", type(exc).__name__, lines[0][:300] if lines else "")
    return DatabaseUnavailable()


def answer_503_when_the_database_is_down(bp: Blueprint) -> None:
    """Database connectivity errors of the blueprint's routes become 503 JSON answers."""

    def _answer(exc: Exception):
        unavailable = database_unavailable(exc)
        response = error_response(503, unavailable.error, unavailable.description)
        for name, value in unavailable.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value      # Retry-After
        return response

    for error in CONNECTIVITY_ERRORS:
        bp.register_error_handler(error, _answer)


class OnFirstUse(Generic[T]):
    """What a route needs from the database, built by ``build`` on its first use and kept.

    The receiver starts without its database: a database that is down, or whose
    schema is behind the code (nothing here migrates it), answers 503 and is tried
    again on the next request.
    """

    def __init__(self, build: Callable[[], T] | None, what: str) -> None:
        self._build = build
        self._what = what
        self._lock = threading.Lock()
        self._value: T | None = None

    def get(self) -> T:
        with self._lock:
            if self._value is None:
                if self._build is None:
                    raise DatabaseUnavailable(f"This app has no database for {self._what}.")
                try:
                    self._value = self._build()
                except SchemaOutdated as exc:
                    log.warning("%s: %s", self._what, exc.message)
                    raise DatabaseUnavailable("The database schema is not up to date; "
                                              "the operator must run `syncbridge db upgrade`.") from None
                except CONNECTIVITY_ERRORS as exc:
                    raise database_unavailable(exc) from None
            return self._value
