"""Small HTTP facts both clients need."""
from __future__ import annotations

import ipaddress
import os
import threading
import time
from email.utils import parsedate_to_datetime
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.sessions import merge_setting
from requests.structures import CaseInsensitiveDict
from requests.utils import get_environ_proxies


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

    The APIs it talks to authenticate each call by its own Authorization header, so the
    session keeps no cookies and reads no ~/.netrc: a call is prepared on its own
    (:meth:`requests.Request.prepare`) with the session's headers, and sent with the
    environment's proxies and CA bundle (looked up once per host), not through the
    per-call merging of session state that costs more than the call's own work.
    """

    def __init__(self, *, pool: int = 10, limit: int | None = None) -> None:
        super().__init__()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(1, pool))
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))    # none kept, none sent
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit) if limit else None
        self._env_proxies: dict[tuple[str, str, Any], dict[str, str]] = {}
        self._settings: dict[tuple[str, str], dict[str, Any]] = {}

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # type: ignore[no-untyped-def]
        """As requests does, but the proxies the environment names are looked up once per host, not per call."""
        if self.trust_env:
            proxies = dict(proxies or {})
            no_proxy = proxies.get("no_proxy")
            parts = urlsplit(url)
            key = (parts.scheme, parts.netloc, no_proxy)
            found = self._env_proxies.get(key)
            if found is None:
                found = self._env_proxies[key] = get_environ_proxies(url, no_proxy=no_proxy)
            for name, value in found.items():
                proxies.setdefault(name, value)
            if verify is True or verify is None:
                verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or verify
        return {"proxies": merge_setting(proxies, self.proxies), "stream": merge_setting(stream, self.stream),
                "verify": merge_setting(verify, self.verify), "cert": merge_setting(cert, self.cert)}

    def request(self, method: str | bytes, url: str | bytes, params: Any = None, data: Any = None,  # type: ignore[override]
                headers: Any = None, timeout: Any = None, allow_redirects: bool = True, json: Any = None,
                **rest: Any) -> requests.Response:
        if rest:        # cookies, files, auth, proxies, hooks, stream, verify, cert: requests' own way
            return self._limited(super().request, method, url, params=params, data=data, headers=headers,
                                 timeout=timeout, allow_redirects=allow_redirects, json=json, **rest)
        merged = CaseInsensitiveDict(self.headers)
        if headers:
            merged.update(headers)
            for name in [name for name, value in merged.items() if value is None]:
                del merged[name]        # as requests does: None takes a session header away
        prepared = requests.Request(method=str(method.decode() if isinstance(method, bytes) else method).upper(),
                                    url=url, headers=merged, params=params, data=data, json=json).prepare()
        parts = urlsplit(prepared.url or "")
        settings = self._settings.get((parts.scheme, parts.netloc))
        if settings is None:       # the environment's proxies and CA bundle, once per host (as the proxies above)
            settings = self._settings[(parts.scheme, parts.netloc)] = \
                self.merge_environment_settings(prepared.url, {}, None, None, None)
        return self._limited(self.send, prepared, timeout=timeout, allow_redirects=allow_redirects, **settings)

    def _limited(self, call: Any, *args: Any, **kwargs: Any) -> requests.Response:
        if self._slots is None:
            return call(*args, **kwargs)
        with self._slots:
            return call(*args, **kwargs)
