"""Small HTTP facts both clients need."""
from __future__ import annotations

import ipaddress
import os
import re
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from email.utils import parsedate_to_datetime
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar
from requests.sessions import merge_setting
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers, get_environ_proxies
from urllib3 import Timeout
from urllib3 import exceptions as urllib3_exceptions
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    DecodeError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
)


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


# URLs that requests' preparing (urllib3's parse_url, requote_uri) hands back unchanged: lower-case http(s)
# scheme and host, a port without a leading zero, a path and query of characters that need no quoting, no
# "%", no user info, no fragment, no dot segments.  Any other URL is prepared by requests itself.
_PLAIN_URL = re.compile(r"(https?)://([a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[1-9][0-9]{0,4})?)"
                        r"(/[A-Za-z0-9._~!$&'()*+,;=:@/-]*)(\?[A-Za-z0-9._~!$&'()*+,;=:@/?-]*)?")


class _Host:
    """What every plain call to one scheme://host:port shares: its settings, adapter, connection pool, URL form."""

    __slots__ = ("settings", "adapter", "pool", "full_url")

    def __init__(self, settings: dict[str, Any], adapter: HTTPAdapter, pool: Any, full_url: bool) -> None:
        self.settings = settings
        self.adapter = adapter
        self.pool = pool
        self.full_url = full_url


class LimitedSession(requests.Session):
    """A session for many threads: ``pool`` kept-alive connections per host, at most ``limit`` requests at once.

    ``limit`` is the remote side's concurrency limit for this process (None: no limit);
    a thread over it waits for a free slot, it is never refused.

    The APIs it talks to authenticate each call by its own Authorization header, so the
    session keeps no cookies and reads no ~/.netrc.  A plain call (a URL that needs no
    quoting, no query parameters or a JSON body, no per-call options) is prepared as
    requests prepares it and sent on requests' own connection pool (urllib3) directly,
    with requests' timeouts, errors and redirect handling, and the environment's proxies
    and CA bundle looked up once per host: not through requests' per-call preparing,
    setting merging, adapter and pool lookup, which cost more than the call's own work.
    Every other call goes through requests as it is.
    """

    def __init__(self, *, pool: int = 10, limit: int | None = None, slots: Any = None) -> None:
        """``slots``: what limits the calls instead of a semaphore of ``limit`` (one shared by processes)."""
        super().__init__()
        self._adapter = adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(1, pool))
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))    # none kept, none sent
        self.limit = limit
        self._slots = slots if slots is not None else threading.BoundedSemaphore(limit) if limit else None
        self._env_proxies: dict[tuple[str, str, Any], dict[str, str]] = {}
        self._settings: dict[tuple[str, str], dict[str, Any]] = {}
        self._hosts: dict[tuple[str, str], _Host] = {}
        self._timeouts: dict[Any, Timeout] = {}

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
        method = str(method.decode() if isinstance(method, bytes) else method).upper()
        merged = CaseInsensitiveDict(self.headers)
        if headers:
            merged.update(headers)
            for name in [name for name, value in merged.items() if value is None]:
                del merged[name]        # as requests does: None takes a session header away
        plain = _PLAIN_URL.fullmatch(url) if isinstance(url, str) and "/." not in url and data is None \
            and not params and self.auth is None and not self.params and not self.hooks["response"] \
            and not self.cookies._cookies and len(self.adapters) == 2 else None    # type: ignore[attr-defined]
        host = None if plain is None else self._hosts.get((plain[1], plain[2])) or self._host(plain)
        if host is None or plain is None:
            # Prepared on its own (no cookies, no ~/.netrc) and sent through requests.
            prepared = requests.Request(method=method, url=url, headers=merged, params=params, data=data,
                                        json=json).prepare()
            return self._limited(self.send, prepared, timeout=timeout, allow_redirects=allow_redirects,
                                 **self._settings_for(prepared.url or ""))
        # As Request.prepare prepares it: the URL is one it leaves as it is, there are no cookies and no auth.
        prepared = requests.PreparedRequest()
        prepared.method = method
        prepared.url = plain[0]
        prepared.prepare_headers(merged)
        if json is None:
            prepared.prepare_content_length(None)
        else:
            prepared.prepare_body(None, None, json)
        target = prepared.url if host.full_url else plain[3] + (plain[4] or "")
        return self._limited(self._send_plain, host, prepared, target, timeout, allow_redirects)

    def _settings_for(self, url: str) -> dict[str, Any]:
        """The environment's proxies and CA bundle for the URL's scheme and host, merged once per host."""
        parts = urlsplit(url)
        settings = self._settings.get((parts.scheme, parts.netloc))
        if settings is None:
            settings = self._settings[(parts.scheme, parts.netloc)] = \
                self.merge_environment_settings(url, {}, None, None, None)  # type: ignore[no-untyped-call]
        return settings

    def _host(self, plain: re.Match[str]) -> _Host | None:
        """What plain calls to the URL's host share (looked up on its first plain call); None: send through requests."""
        url = plain[0]
        settings = self._settings_for(url)
        adapter = self.get_adapter(url)
        if adapter is not self._adapter or settings["stream"] or len(self.adapters) != 2:
            return None
        probe = requests.PreparedRequest()
        probe.url = url
        pool = adapter.get_connection_with_tls_context(probe, settings["verify"], proxies=settings["proxies"],
                                                       cert=settings["cert"])
        adapter.cert_verify(pool, url, settings["verify"], settings["cert"])
        host = _Host(settings, adapter, pool, adapter.request_url(probe, settings["proxies"]) == url)
        self._hosts[(plain[1], plain[2])] = host
        return host

    def _send_plain(self, host: _Host, prepared: requests.PreparedRequest, target: str, timeout: Any,
                    allow_redirects: bool) -> requests.Response:
        """Send a prepared call on the host's connection pool, as requests' Session.send and HTTPAdapter.send do."""
        pool = host.pool
        if pool.pool is None:       # closed: the pool manager let it go (more hosts than it keeps)
            del self._hosts[next(key for key, value in self._hosts.items() if value is host)]
            prepared._cookies = RequestsCookieJar()     # as a prepared request has them
            return self.send(prepared, timeout=timeout, allow_redirects=allow_redirects, **host.settings)
        try:
            resolved = self._timeouts.get(timeout)
            if resolved is None:
                resolved = self._timeouts[timeout] = _resolve_timeout(timeout)
        except TypeError:           # not hashable: as requests takes it (and refuses it)
            resolved = _resolve_timeout(timeout)
        start = time.perf_counter()
        try:
            raw = pool.urlopen(method=prepared.method, url=target, body=prepared.body, headers=prepared.headers,
                               redirect=False, assert_same_host=False, preload_content=False,
                               decode_content=False, retries=host.adapter.max_retries, timeout=resolved,
                               chunked=not (prepared.body is None or "Content-Length" in prepared.headers))
        except (ProtocolError, OSError) as err:
            raise requests.ConnectionError(err, request=prepared) from err
        except MaxRetryError as exc:
            if isinstance(exc.reason, ConnectTimeoutError) and not isinstance(exc.reason, NewConnectionError):
                raise requests.ConnectTimeout(exc, request=prepared) from exc
            if isinstance(exc.reason, ResponseError):
                raise requests.exceptions.RetryError(exc, request=prepared) from exc
            if isinstance(exc.reason, urllib3_exceptions.ProxyError):
                raise requests.exceptions.ProxyError(exc, request=prepared) from exc
            if isinstance(exc.reason, urllib3_exceptions.SSLError):
                raise requests.exceptions.SSLError(exc, request=prepared) from exc
            raise requests.ConnectionError(exc, request=prepared) from exc
        except ClosedPoolError as exc:
            raise requests.ConnectionError(exc, request=prepared) from exc
        except urllib3_exceptions.ProxyError as exc:
            raise requests.exceptions.ProxyError(exc) from exc
        except urllib3_exceptions.SSLError as exc:
            raise requests.exceptions.SSLError(exc, request=prepared) from exc
        except ReadTimeoutError as exc:
            raise requests.ReadTimeout(exc, request=prepared) from exc
        except urllib3_exceptions.InvalidHeader as exc:
            raise requests.exceptions.InvalidHeader(exc, request=prepared) from exc
        response = requests.Response()
        response.status_code = raw.status
        response.headers = CaseInsensitiveDict(raw.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = raw
        response.reason = raw.reason
        response.url = prepared.url or ""
        response.request = prepared
        response.connection = host.adapter
        response.elapsed = timedelta(seconds=time.perf_counter() - start)
        # The session keeps no cookies (and so does not note the answer's in it, nor in the response's jar).
        if response.is_redirect:
            prepared._cookies = RequestsCookieJar()     # as a prepared request has them
            settings = host.settings
            if allow_redirects:
                history = list(self.resolve_redirects(response, prepared, timeout=timeout, **settings))
                if history:
                    history.insert(0, response)
                    response = history.pop()
                    response.history = history
            else:
                response._next = next(self.resolve_redirects(  # type: ignore[assignment]  # a request, as requests has it
                    response, prepared, yield_requests=True, timeout=timeout, **settings), None)
        if response._content is False:      # not read while following redirects: read it whole, as requests does
            try:
                content = response.raw.read(decode_content=True)
            except ProtocolError as exc:
                raise requests.exceptions.ChunkedEncodingError(exc) from exc
            except DecodeError as exc:
                raise requests.exceptions.ContentDecodingError(exc) from exc
            except ReadTimeoutError as exc:
                raise requests.ConnectionError(exc) from exc
            except urllib3_exceptions.SSLError as exc:
                raise requests.exceptions.SSLError(exc) from exc
            response._content = content or b""
            response._content_consumed = True
        return response

    def _limited(self, call: Callable[..., requests.Response], *args: Any, **kwargs: Any) -> requests.Response:
        if self._slots is None:
            return call(*args, **kwargs)
        with self._slots:
            return call(*args, **kwargs)


def _resolve_timeout(timeout: Any) -> Timeout:
    """The urllib3 timeout of a requests timeout (seconds, a (connect, read) pair, or a urllib3 Timeout)."""
    if isinstance(timeout, tuple):
        try:
            connect, read = timeout
        except ValueError:
            raise ValueError(f"Invalid timeout {timeout}. Pass a (connect, read) timeout tuple, "
                             "or a single float to set both timeouts to the same value.") from None
        return Timeout(connect=connect, read=read)
    if isinstance(timeout, Timeout):
        return timeout
    return Timeout(connect=timeout, read=timeout)
