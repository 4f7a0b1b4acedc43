"""Small HTTP facts both clients need."""
from __future__ import annotations

import ipaddress
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def is_loopback(url: str) -> bool:
    """Whether the URL's host is this machine (where a plain-http simulator may run)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LimitedSession(requests.Session):
    """A session for many threads: ``pool`` kept-alive connections per host, at most ``limit`` requests at once.

    ``limit`` is the remote side's concurrency limit for this process (None: no limit);
    a thread over it waits for a free slot, it is never refused.
    """

    def __init__(self, *, pool: int = 10, limit: int | None = None) -> None:
        super().__init__()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(1, pool))
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit) if limit else None

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if self._slots is None:
            return super().request(*args, **kwargs)
        with self._slots:
            return super().request(*args, **kwargs)
