"""Ameise (blau direkt) client: OAuth2 per employee and the employee web service.

Follows Dionera's public documentation of the employee web service
(``mitarbeiterwebservice.maklerinfo.biz``, ``X-Dio-`` header rule) and of its
OAuth2 server (``https://auth.dionera.com``), quirks included.
"""
from __future__ import annotations

import html
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests
from oauthlib.oauth2 import MissingTokenError, OAuth2Error, WebApplicationClient
from requests.auth import HTTPBasicAuth

from syncbridge.adapters.http import is_loopback, retry_after_seconds
from syncbridge.errors import ExternalServiceError, ReconnectNeeded, Rejected, Unavailable
from syncbridge.ports import OAuthToken, TokenStore

# A call refused with 401 is sent again after a token refresh this many times before Ameise counts as
# needing a reconnect.
REFRESHES_PER_CALL = 3

log = logging.getLogger(__name__)

PROVIDER = "ameise"
# Ameise does not publish the token lifetime; assume an hour when expires_in is missing.
DEFAULT_TOKEN_LIFETIME = 3600.0
# Seconds an API call may use the token as last read from the (shared) token store instead of reading it again.
TOKEN_CACHE_S = 5.0
SEARCH_PAGE_SIZE = 100
SEARCH_MAX_PAGES = 100
# The text of the preflight check's search: any answer that is a list proves the grant works.
CHECK_QUERY = "syncbridge-preflight"

# One refresh at a time in this process; other processes see the result through
# the token store, which is re-read inside the lock.
_REFRESH_LOCK = threading.Lock()


class AmeiseError(ExternalServiceError):
    """Base of every error of the Ameise client."""

    system = "ameise"


class AmeiseUnavailable(AmeiseError, Unavailable):
    """Ameise could not be reached, failed (5xx) or asked us to wait (429)."""


class AmeiseRejected(AmeiseError, Rejected):
    """Ameise refused the request (4xx); sending it again will not help."""


class AmeiseReconnectNeeded(AmeiseUnavailable, ReconnectNeeded):
    """The Ameise OAuth grant is gone; a person must reconnect."""


# ---------------------------------------------------------------- response helpers
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
_H1 = re.compile(r"<h1[^>]*>(.*?)</h1>", re.I | re.S)
_TAG = re.compile(r"<[^>]+>")


def _html_text(fragment: str) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", fragment)).split())


def _json_or_none(response: requests.Response) -> Any:
    """The parsed body when it is JSON, else None; Ameise also answers HTML pages."""
    text = response.text.strip()
    if not text or text[0] not in "[{":
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _messages(body: Any) -> tuple[str, str | None, str | None]:
    """(message, first field, code) of a JSON error body of any known shape."""
    if isinstance(body, dict):
        if "error" in body and isinstance(body["error"], str):
            return str(body.get("error_description") or body["error"]), None, body["error"]
        if isinstance(body.get("errors"), list):
            return _messages(body["errors"])
        return str(body.get("message") or body), body.get("field"), None
    if isinstance(body, list) and body:
        texts, field = [], None
        for item in body:
            if isinstance(item, dict):
                text = str(item.get("message") or item.get("msg") or item)
                if item.get("field"):
                    field = field or str(item["field"])
                    if item["field"] not in text:
                        text = f"{item['field']}: {text}"
                texts.append(text)
            else:
                texts.append(str(item))
        return "; ".join(texts), field, None
    return str(body), None, None


def describe_response(response: requests.Response) -> tuple[str, str | None, str | None, Any]:
    """(message, field, code, body) of an error answer, JSON list or HTML page alike."""
    body = _json_or_none(response)
    if body is not None:
        message, field, code = _messages(body)
        return message, field, code, body
    text = response.text
    match = _TITLE.search(text) or _H1.search(text)
    message = _html_text(match.group(1)) if match else _html_text(text)[:200]
    return message or f"HTTP {response.status_code}", None, None, text[:2000]




def _error_for(response: requests.Response, what: str) -> AmeiseError:
    """The error of a non-2xx answer: unavailable for 5xx/429/3xx, rejected for other 4xx."""
    message, field, code, body = describe_response(response)
    status = response.status_code
    text = f"{what}: {message}"
    if status == 429 or status >= 500 or status < 400:
        return AmeiseUnavailable(
            text, status=status, code=code, field=field, body=body,
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    return AmeiseRejected(text, status=status, code=code, field=field, body=body)




def _permit_plain_http(url: str, allow_http: bool = False) -> None:
    """Refuse a plain-http OAuth server unless it is on this machine (a simulator) or explicitly allowed."""
    if urlsplit(url).scheme != "http":
        return
    if not (allow_http or is_loopback(url)):
        raise ValueError(f"Ameise OAuth needs https, got {url} (plain http only for a loopback simulator, "
                         "or with SYNCBRIDGE_ALLOW_HTTP_OAUTH=true for simulators on other hosts)")


# ---------------------------------------------------------------- OAuth2
class AmeiseOAuth:
    """OAuth2 authorization-code grant of one Ameise employee, shared through a token store.

    oauthlib's client prepares the token requests and reads their answers; the
    requests go out through this object's own HTTP session.  The rule for plain
    http is ours (:func:`_permit_plain_http`, checked once here), so nothing
    depends on oauthlib's process-wide ``OAUTHLIB_INSECURE_TRANSPORT`` switch.

    Follows Dionera's OAuth2 server as used by the employee web service
    (Dionera's web-service documentation, authentication section):
    client authentication by HTTP Basic, scope ``offline`` for a refresh token, a
    refresh may answer no new refresh token (then the old one stays valid), and
    ``/userinfo`` names the employee whose id is part of every API path.
    """

    def __init__(
        self,
        *,
        auth_url: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        scope: str,
        token_store: TokenStore,
        timeout: float = 15.0,
        refresh_margin: float = 60.0,
        session: requests.Session | None = None,
        bootstrap_refresh_token: str = "",
        allow_http: bool = False,
        token_cache_s: float = TOKEN_CACHE_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.auth_url = auth_url.rstrip("/")
        _permit_plain_http(self.auth_url, allow_http)
        self.authorize_endpoint = self.auth_url + "/oauth2/auth"
        self.token_endpoint = self.auth_url + "/oauth2/token"
        self.userinfo_endpoint = self.auth_url + "/userinfo"
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.scope = scope.split()
        self.token_store = token_store
        self.timeout = timeout
        self.refresh_margin = refresh_margin
        self._http = session or requests.Session()
        self._bootstrap_refresh_token = bootstrap_refresh_token
        # The stored token as last read, and when: API calls use it instead of reading the store each time.
        self.token_cache_s = token_cache_s
        self._monotonic = monotonic
        self._cached: tuple[OAuthToken, float] | None = None

    @classmethod
    def from_settings(cls, settings, token_store: TokenStore, *, session: requests.Session | None = None,
                      redirect_uri: str = "") -> AmeiseOAuth:
        """Build from :class:`syncbridge.config.Settings`; no I/O (``redirect_uri``: another callback than the CLI's)."""
        return cls(
            auth_url=settings.ameise_auth_url,
            client_id=settings.ameise_client_id,
            client_secret=settings.ameise_client_secret,
            redirect_uri=redirect_uri or settings.public_url.rstrip("/") + "/connect/ameise/callback",
            scope=settings.ameise_scope,
            token_store=token_store,
            timeout=settings.http_timeout,
            refresh_margin=settings.token_refresh_margin,
            session=session,
            bootstrap_refresh_token=settings.ameise_refresh_token,
            allow_http=settings.allow_http_oauth,
        )

    # ------------------------------------------------------------ connecting
    # Dionera's OAuth2 server (Ory Hydra) supports PKCE (RFC 7636) with S256.
    supports_pkce = True

    def authorization_url(self, state: str, code_challenge: str = "") -> str:
        """The URL a person opens to connect their Ameise account (with a PKCE S256 challenge, if given)."""
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                  "scope": " ".join(self.scope), "state": state}
        if code_challenge:
            params |= {"code_challenge": code_challenge, "code_challenge_method": "S256"}
        return f"{self.authorize_endpoint}?{urlencode(params)}"

    def exchange_code(self, code: str, code_verifier: str = "") -> OAuthToken:
        """Trade the code of the redirect for tokens, learn the employee id, and store both."""
        extra = {"code_verifier": code_verifier} if code_verifier else {}
        raw = self._token_call("connect", self._oauth_client().prepare_request_body(
            code=code, redirect_uri=self.redirect_uri, include_client_id=False, **extra,
        ))
        if not raw.get("refresh_token"):
            raise AmeiseRejected(
                "Ameise granted no refresh token; the scope must include 'offline'", body=dict(raw),
            )
        token = self._to_token(raw, previous=None)
        token.extra["employee_id"] = self.userinfo(token.access_token)["sub"]
        self.token_store.save(PROVIDER, token)
        self._cached = None
        return token

    def connect_with_refresh_token(self, refresh_token: str) -> OAuthToken:
        """Start from a configured refresh token: refresh, learn the employee id, store."""
        with _REFRESH_LOCK:
            seed = OAuthToken(access_token="", refresh_token=refresh_token, expires_at=0.0)
            token = self._refresh_grant(seed)
            token.extra["employee_id"] = self.userinfo(token.access_token)["sub"]
            self.token_store.save(PROVIDER, token)
            self._cached = None
            return token

    def userinfo(self, access_token: str) -> dict[str, Any]:
        """The OIDC userinfo of the connected employee (``sub`` is the employee id)."""
        try:
            response = self._http.get(
                self.userinfo_endpoint,
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
                timeout=self.timeout,
            )
        except requests.Timeout as exc:
            raise AmeiseUnavailable(f"userinfo timed out after {self.timeout}s") from exc
        except requests.RequestException as exc:
            raise AmeiseUnavailable(f"userinfo could not be reached: {exc}") from exc
        if not response.ok:
            raise _error_for(response, "userinfo")
        body = _json_or_none(response)
        if not isinstance(body, dict) or not body.get("sub"):
            raise AmeiseRejected("userinfo answered without sub", status=response.status_code, body=response.text[:2000])
        return body

    # ------------------------------------------------------------ using the grant
    @property
    def employee_id(self) -> str:
        """The connected employee's id (``{ma}`` of the API paths)."""
        return self.credentials()[1]

    def access_token(self) -> str:
        """A valid access token, refreshed about ``refresh_margin`` seconds before it expires."""
        token = self._stored_token()
        if token is not None and self._fresh(token):
            return token.access_token
        return self.refresh_access_token()

    def credentials(self) -> tuple[str, str]:
        """(access token, employee id) for one API call."""
        token = self._stored_token()
        if token is None or not self._fresh(token):
            self.refresh_access_token()
            token = self._stored_token()
            if token is None:
                raise AmeiseReconnectNeeded("Ameise is not connected")
        employee_id = token.extra.get("employee_id")
        if not employee_id:
            # A grant stored without the employee (e.g. by an older release): ask once, keep it.
            employee_id = self.userinfo(token.access_token)["sub"]
            token.extra["employee_id"] = employee_id
            self.token_store.save(PROVIDER, token)
            self._cached = None
        return token.access_token, employee_id

    def _stored_token(self) -> OAuthToken | None:
        """The stored token, read from the store at most every ``token_cache_s`` seconds.

        Every process reads the shared store again once that time is up, after a refresh
        (which reads the store itself) and when the cached token is no longer fresh, so a
        token another process refreshed or a disconnect is seen within seconds; a call
        refused with 401 refreshes through :meth:`refresh_access_token`, which reads the store.
        """
        cached, now = self._cached, self._monotonic()
        if cached is not None and now - cached[1] < self.token_cache_s and self._fresh(cached[0]):
            return cached[0]
        token = self.token_store.load(PROVIDER)
        self._cached = None if token is None else (token, now)
        return token

    def refresh_access_token(self, rejected: str | None = None) -> str:
        """Refresh now unless another thread or process already did (``rejected``: the token that failed)."""
        with _REFRESH_LOCK:
            self._cached = None
            token = self.token_store.load(PROVIDER)
            if token is not None and token.access_token != rejected and self._fresh(token):
                return token.access_token
            status, detail = self.token_store.status(PROVIDER)
            if status == "reconnect_needed":
                raise AmeiseReconnectNeeded(f"Ameise needs a reconnect: {detail}")
            if token is None:
                if self._bootstrap_refresh_token:
                    seed = OAuthToken(access_token="", refresh_token=self._bootstrap_refresh_token, expires_at=0.0)
                    token = self._refresh_grant(seed)
                    token.extra["employee_id"] = self.userinfo(token.access_token)["sub"]
                    self.token_store.save(PROVIDER, token)
                    return token.access_token
                raise AmeiseReconnectNeeded("Ameise is not connected: connect it with `syncbridge connect ameise`")
            new = self._refresh_grant(token)
            self.token_store.save(PROVIDER, new)
            return new.access_token

    def reconnect_needed(self, detail: str, **kwargs: Any) -> AmeiseReconnectNeeded:
        """Mark the connection as needing a person and return the error to raise."""
        self._cached = None
        self.token_store.set_status(PROVIDER, "reconnect_needed", detail)
        return AmeiseReconnectNeeded(f"Ameise needs a reconnect: {detail}", **kwargs)

    # ------------------------------------------------------------ internals
    def _fresh(self, token: OAuthToken) -> bool:
        return bool(token.access_token) and token.expires_at - self.refresh_margin > time.time()

    def _basic_auth(self) -> HTTPBasicAuth:
        # RFC 6749 2.3.1: id and secret are form-encoded before they go into Basic.
        return HTTPBasicAuth(quote(self.client_id, safe=""), quote(self._client_secret, safe=""))

    def _refresh_grant(self, token: OAuthToken) -> OAuthToken:
        try:
            raw = self._token_call("refresh", self._oauth_client().prepare_refresh_body(refresh_token=token.refresh_token))
        except AmeiseRejected as exc:
            # With rotating refresh tokens another process may have used ours a moment ago.
            current = self.token_store.load(PROVIDER)
            if current is not None and current.refresh_token != token.refresh_token and self._fresh(current):
                return current
            detail = f"refresh failed: {exc.describe()}"
            self.token_store.set_status(PROVIDER, "reconnect_needed", detail)
            raise AmeiseReconnectNeeded(
                f"Ameise needs a reconnect: {detail}", status=exc.status, code=exc.code, body=exc.body,
            ) from exc
        log.info("ameise: access token refreshed")
        return self._to_token(raw, previous=token)

    def _to_token(self, raw: dict[str, Any], previous: OAuthToken | None) -> OAuthToken:
        try:
            lifetime = float(raw.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (TypeError, ValueError):
            lifetime = DEFAULT_TOKEN_LIFETIME
        extra = dict(previous.extra) if previous is not None else {}
        scope = raw.get("scope")
        if scope:
            extra["scope"] = scope if isinstance(scope, str) else " ".join(scope)
        return OAuthToken(
            access_token=raw["access_token"],
            # Ameise may answer a refresh without a new refresh token: keep the old one.
            refresh_token=raw.get("refresh_token") or (previous.refresh_token if previous else ""),
            expires_at=time.time() + lifetime,
            extra=extra,
        )

    def _oauth_client(self) -> WebApplicationClient:
        # Keeps state of its own: one per request.  No I/O and no transport check in the methods used.
        return WebApplicationClient(self.client_id)

    def _token_call(self, what: str, form: str) -> dict[str, Any]:
        """POST one form-encoded token request (client authenticated by Basic); map the errors to the two kinds."""
        try:
            response = self._http.post(
                self.token_endpoint, data=form, auth=self._basic_auth(), timeout=self.timeout,
                headers={"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"},
            )
        except requests.Timeout as exc:
            raise AmeiseUnavailable(f"token endpoint ({what}) timed out after {self.timeout}s") from exc
        except requests.RequestException as exc:
            raise AmeiseUnavailable(f"token endpoint ({what}) could not be reached: {exc}") from exc
        if not response.ok:
            raise _error_for(response, f"token endpoint ({what})")
        try:
            # scope=None: do not let oauthlib raise when Ameise grants a different scope.
            return dict(self._oauth_client().parse_request_body_response(response.text, scope=None))
        except MissingTokenError as exc:
            raise AmeiseUnavailable(f"token endpoint ({what}) answered without an access token") from exc
        except OAuth2Error as exc:
            raise AmeiseRejected(
                f"token endpoint ({what}): {exc.description or exc.error}", status=exc.status_code, code=exc.error,
            ) from exc
        except ValueError as exc:
            raise AmeiseUnavailable(f"token endpoint ({what}) answered something unreadable: {exc}") from exc


# ---------------------------------------------------------------- employee web service
class AmeiseClient:
    """The Ameise employee web service for the connected employee (implements :class:`syncbridge.ports.AmeiseClient`).

    Vendor doc: Dionera's employee web-service documentation.  The HTTP status
    is authoritative and error bodies are a JSON list of messages or an HTML page,
    never assumed to be JSON.  There is no upsert: callers GET or search first.
    """

    def __init__(self, oauth: AmeiseOAuth, *, api_url: str, timeout: float = 15.0, session: requests.Session | None = None) -> None:
        self.oauth = oauth
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self._http = session or requests.Session()

    @classmethod
    def from_settings(cls, settings, token_store: TokenStore, *, session: requests.Session | None = None) -> AmeiseClient:
        """Build from :class:`syncbridge.config.Settings`; no I/O."""
        return cls(
            AmeiseOAuth.from_settings(settings, token_store, session=session),
            api_url=settings.ameise_api_url,
            timeout=settings.http_timeout,
            session=session,
        )

    # ------------------------------------------------------------ customers
    def get_customer(self, kundennummer: str) -> dict[str, Any] | None:
        """The customer, or None when Ameise does not know the number."""
        return self._call("GET", "kunden", kundennummer, missing_ok=True)

    def create_customer(self, data: dict[str, Any]) -> str:
        """Create a customer; return the new Kundennummer (Ameise answers only Id and Benutzername)."""
        return self._created_id(self._call("POST", "kunden", json=data, creates=True), "customer")

    def update_customer(self, kundennummer: str, data: dict[str, Any]) -> None:
        """Update a customer's own fields (Anrede, Person one level deep, Vermittler); an unknown number is rejected (404)."""
        self._call("PUT", "kunden", kundennummer, json=data)

    def set_main_address(self, kundennummer: str, address: dict[str, Any]) -> None:
        """Write the main address: ``PUT kunden/{nr}/adressen/0`` (read back as ``Hauptwohnsitz``)."""
        self._call("PUT", "kunden", kundennummer, "adressen", "0", json=address)

    def add_contact(self, kundennummer: str, entry: dict[str, Any]) -> None:
        """``POST kunden/{nr}/kontaktdaten``: one more ``{Kontext, Typ, Value}`` entry."""
        self._call("POST", "kunden", kundennummer, "kontaktdaten", json=entry)

    def update_contact(self, kundennummer: str, contact_id: str, entry: dict[str, Any]) -> None:
        """``PUT kunden/{nr}/kontaktdaten/{id}``: change one entry."""
        self._call("PUT", "kunden", kundennummer, "kontaktdaten", contact_id, json=entry)

    def search_customers(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """``KundenSuchErgebnis`` items for ``{"q": text}`` or ``{"mail": address}`` (``GET kunden/_search``), every page."""
        hits: list[dict[str, Any]] = []
        for page in range(SEARCH_MAX_PAGES):
            params = {**query, "from": page * SEARCH_PAGE_SIZE, "size": SEARCH_PAGE_SIZE}
            batch = self._call("GET", "kunden", "_search", params=params)
            if not isinstance(batch, list):
                raise AmeiseUnavailable(f"GET kunden/_search answered no list: {str(batch)[:200]}", body=batch)
            hits.extend(batch)
            if len(batch) < SEARCH_PAGE_SIZE:
                break
        return hits

    def customer_contracts(self, kundennummer: str) -> list[dict[str, Any]]:
        """The contracts of a customer; empty when Ameise knows none (or not the customer)."""
        return self._call("GET", "kunden", kundennummer, "vertraege", missing_ok=True) or []

    # ------------------------------------------------------------ contracts
    def get_contract(self, vertragsnummer: str) -> dict[str, Any] | None:
        """The contract, or None when Ameise does not know the number."""
        return self._call("GET", "vertraege", vertragsnummer, missing_ok=True)

    def create_contract(self, data: dict[str, Any]) -> str:
        """Create a contract; return the new Vertragsnummer (Ameise answers only its Id)."""
        return self._created_id(self._call("POST", "vertraege", json=data, creates=True), "contract")

    def update_contract(self, vertragsnummer: str, data: dict[str, Any]) -> None:
        """Update a contract with a partial body (Beitrag and Laufzeit merge)."""
        self._call("PUT", "vertraege", vertragsnummer, json=data)

    # ------------------------------------------------------------ the preflight check
    def check_connection(self) -> str:
        """The grant works: a token (refreshed if due) and one cheap read, ``GET kunden/_search`` of one hit.

        Implements :class:`syncbridge.ports.AmeiseConnection`; returns the employee id.
        """
        hits = self._call("GET", "kunden", "_search", params={"q": CHECK_QUERY, "from": 0, "size": 1})
        if not isinstance(hits, list):
            raise AmeiseUnavailable(f"GET kunden/_search answered no list: {str(hits)[:200]}", body=hits)
        return self.oauth.employee_id

    # ------------------------------------------------------------ HTTP
    def _call(
        self,
        method: str,
        *parts: str,
        json: Any = None,
        params: dict[str, Any] | None = None,
        missing_ok: bool = False,
        creates: bool = False,
    ) -> Any:
        """One API call: a 401 refreshes the token and sends it again (a few times); errors mapped to the two kinds."""
        access, employee_id = self.oauth.credentials()
        url = "/".join([self.api_url, quote(employee_id, safe=""), *(quote(str(p), safe="") for p in parts)])
        what = f"{method} {'/'.join(parts)}"
        request_id = uuid.uuid4().hex  # same id on the retry: it is the same logical request
        response = self._send(method, url, access, request_id, json, params, what)
        for _ in range(REFRESHES_PER_CALL):
            if response.status_code != 401:
                break
            # A refused token is refreshed (unless another thread already did) and the call sent again. With
            # many calls in flight, the token one of them refreshed can be refused too (it expired meanwhile, or
            # a refresh elsewhere replaced it): a few rounds, and only then a person is asked to reconnect.
            access = self.oauth.refresh_access_token(rejected=access)
            response = self._send(method, url, access, request_id, json, params, what)
        if response.status_code == 401:
            message, _, _, body = describe_response(response)
            raise self.oauth.reconnect_needed(
                f"{what} answered 401 after {REFRESHES_PER_CALL} token refreshes ({message})", status=401, body=body,
            )
        if response.status_code == 404 and missing_ok:
            return None
        if not 200 <= response.status_code < 300:
            raise _error_for(response, what)
        if response.status_code == 204 or not response.content:
            return None
        body = _json_or_none(response)
        if body is None:
            message, _, _, text = describe_response(response)
            # A create may have happened: don't invite a blind retry that could duplicate it.
            kind = AmeiseRejected if creates else AmeiseUnavailable
            raise kind(f"{what} answered {response.status_code} without JSON: {message}", status=response.status_code, body=text)
        return body

    def _send(
        self, method: str, url: str, access: str, request_id: str, json: Any, params: dict[str, Any] | None, what: str
    ) -> requests.Response:
        headers = {
            "Authorization": f"Bearer {access}",
            "Accept": "application/json",
            # Ameise refuses custom headers without the X-Dio- prefix.
            "X-Dio-Request-Id": request_id,
        }
        try:
            return self._http.request(
                method, url, headers=headers, json=json, params=params, timeout=self.timeout, allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise AmeiseUnavailable(f"{what} timed out after {self.timeout}s") from exc
        except requests.RequestException as exc:
            raise AmeiseUnavailable(f"{what} could not reach Ameise: {exc}") from exc

    @staticmethod
    def _created_id(body: Any, kind: str) -> str:
        if isinstance(body, dict) and body.get("Id") not in (None, ""):
            return str(body["Id"])
        # Created or not, we cannot tell: rejected, so a person looks before anything is sent again.
        raise AmeiseRejected(f"Ameise answered the {kind} create without an Id", body=body)
