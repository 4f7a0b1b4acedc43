"""The two kinds of failure every client raises.

Each client defines one base error with an *unavailable* and a *rejected* child
(e.g. ``ZohoUnavailable(ZohoError, Unavailable)``), so business code can decide
on the kind alone:

* :class:`Unavailable` -- timeouts, connection errors, 5xx, 429: try again later
  (``retry_after`` in seconds when the server said so).
* :class:`Rejected` -- 4xx, invalid data: retrying will not help; dead-letter.
* :class:`ReconnectNeeded` -- the OAuth connection is gone (refresh failed): a
  person must reconnect.  It is *unavailable*: messages wait, nothing is dropped.
"""
from __future__ import annotations

from typing import Any


class ExternalServiceError(Exception):
    """Base of every error raised by a client of an outside system."""

    system = "external"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        field: str | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field
        self.body = body
        self.retry_after = retry_after

    def describe(self) -> str:
        """One line for logs and dead letters: system, status, code, field, message."""
        parts = [self.system]
        if self.status is not None:
            parts.append(str(self.status))
        if self.code:
            parts.append(self.code)
        if self.field:
            parts.append(f"field={self.field}")
        return " ".join(parts) + f": {self.message}"


class Unavailable(ExternalServiceError):
    """The system could not be reached or asked us to come back later."""


class Rejected(ExternalServiceError):
    """The system refused the request; sending it again will not help."""


class ReconnectNeeded(Unavailable):
    """The OAuth grant is no longer valid; a person must reconnect."""
