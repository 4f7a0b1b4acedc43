"""Zoho CRM client: OAuth token sharing and the records API (get, insert, update, upsert, delete, search)."""
from __future__ import annotations

import copy
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests

from syncbridge.adapters.grouped import GroupedWrites
from syncbridge.adapters.http import is_loopback, retry_after_seconds
from syncbridge.errors import ExternalServiceError, ReconnectNeeded, Rejected, Unavailable
from syncbridge.ports import (
    SYNC_PURPOSE,
    CreditLedger,
    CreditUse,
    CrmField,
    OAuthToken,
    RecordPage,
    RecordResult,
    TokenStore,
    aware_time,
    credit_minute,
)

# A call refused for its access token is sent again after a refresh this many times before Zoho counts as
# needing a reconnect.
REFRESHES_PER_CALL = 3

log = logging.getLogger(__name__)

PROVIDER = "zoho"
MAX_RECORDS_PER_CALL = 100
SEARCH_PAGE_SIZE = 200
MAX_LIST_FIELDS = 50        # fields one get-records call may name
MAX_PAGED_RECORDS = 2000    # records reachable by page number; beyond them Zoho wants info.next_page_token
TOKEN_ERROR_CODES = ("INVALID_TOKEN", "AUTHENTICATION_FAILURE")
THROTTLE_RETRY_AFTER = 60.0  # Zoho names no wait; the mint limit is counted over 10 minutes
WRITE_STATUSES = (200, 201, 202, 207)
# API credits (https://www.zoho.com/crm/developer/docs/api/v7/api-limits.html): a call costs 1,
# an insert, update or upsert 1 per 10 records. A call Zoho answers with an error costs too,
# except a refused token (401), a refused rate (429) and Zoho's own failure (5xx): there the
# request never got to the API's work (the simulator charges them neither).
WRITE_CALLS = ("insert", "update", "upsert")
RECORDS_PER_CREDIT = 10
# A write Zoho turns away before reading its records costs 1 credit, not 1 per 10 records.
REFUSED_BEFORE_RECORDS = ("INVALID_MODULE", "INVALID_URL_PATTERN", "INVALID_REQUEST_METHOD")
LEDGER_PAUSE = 60.0          # seconds the ledger is left alone after a failed write
MAX_PENDING_USES = 10_000    # uses kept meanwhile, written once the ledger works again
# The system-defined duplicate-check field of each module (Zoho's upsert documentation):
# an upsert may match on it although the field metadata does not flag it unique.
# Custom modules use "Name".
SYSTEM_DUPLICATE_CHECK_FIELDS = {
    "Leads": "Email", "Contacts": "Email", "Accounts": "Account_Name", "Deals": "Deal_Name",
    "Campaigns": "Campaign_Name", "Cases": "Subject", "Solutions": "Solution_Title", "Products": "Product_Name",
    "Vendors": "Vendor_Name", "Price_Books": "Price_Book_Name", "Quotes": "Subject", "Sales_Orders": "Subject",
    "Purchase_Orders": "Subject", "Invoices": "Subject",
}


class ZohoError(ExternalServiceError):
    """Base of every Zoho CRM failure."""

    system = "zoho"


class ZohoUnavailable(ZohoError, Unavailable):
    """Zoho could not be reached, failed (5xx) or asked us to slow down (429): retry later."""


class ZohoRejected(ZohoError, Rejected):
    """Zoho refused the request (4xx): sending it again will not help."""


class ZohoReconnectNeeded(ZohoUnavailable, ReconnectNeeded):
    """The Zoho OAuth grant is gone (refresh refused, token keeps failing): a person must reconnect."""


def escape_criteria_value(value: Any) -> str:
    """Escape a value for a search criteria: backslash, parentheses and comma get a backslash."""
    text = str(value)
    for char in ("\\", "(", ")", ","):
        text = text.replace(char, "\\" + char)
    return text


def criteria_equals(field: str, value: Any) -> str:
    """Build the search criteria ``(field:equals:value)`` with the value escaped."""
    return f"({field}:equals:{escape_criteria_value(value)})"


def criteria_and(*conditions: str) -> str:
    """Join criteria so that all must hold: ``((a)and(b))``."""
    return conditions[0] if len(conditions) == 1 else "(" + "and".join(conditions) + ")"


def _problem(item: dict[str, Any]) -> tuple[str | None, str]:
    """The field and a readable reason of one per-record error (``message (what Zoho expected)``)."""
    details = item.get("details") if isinstance(item.get("details"), dict) else {}
    field = details.get("api_name")
    reason = str(item.get("message") or item.get("code") or "")
    if details.get("expected_data_type"):
        reason += f" (expected {details['expected_data_type']})"
    if details.get("maximum_length") is not None:
        reason += f" (at most {details['maximum_length']} characters)"
    if isinstance(details.get("supported_values"), list):
        reason += f" (allowed: {', '.join(str(v) for v in details['supported_values'])})"
    return (str(field) if field else None), reason


def record_result(item: dict[str, Any], action: str | None = None) -> RecordResult:
    """Turn one ``data[i]`` of a write answer into a :class:`RecordResult` (``action`` when Zoho names none)."""
    details = item.get("details") if isinstance(item.get("details"), dict) else {}
    ok = item.get("status") == "success"
    record_id = details.get("id")
    message = str(item.get("message") or "")
    fields: tuple[str, ...] = ()
    if not ok:
        # MULTIPLE_OR_MULTI_ERRORS has no api_name at the top: each entry of details.errors names one
        entries = details.get("errors") if isinstance(details.get("errors"), list) else [item]
        problems = [_problem(entry) for entry in entries if isinstance(entry, dict)]
        fields = tuple(field for field, _ in problems if field)
        if len(problems) == 1:
            message = problems[0][1]
        elif problems:
            message = "; ".join(f"{field}: {reason}" if field else reason for field, reason in problems)
    return RecordResult(
        ok=ok,
        code=str(item.get("code") or ""),
        message=message,
        action=(item.get("action") or action) if ok else None,
        record_id=str(record_id) if ok and record_id is not None else None,
        field=", ".join(fields) if fields else None,
        details=details,
        fields=fields,
    )


def crm_field(module: str, item: dict[str, Any]) -> CrmField:
    """Turn one entry of ``GET /settings/fields`` into a :class:`CrmField`."""
    # "unique" is an object ({} = duplicates allowed, {"case_sensitive": ..} = unique);
    # older answers and SDKs give a boolean: take both.
    unique_flag = item.get("unique")
    unique = bool(unique_flag) if isinstance(unique_flag, (dict, bool)) else False
    values = []
    for entry in item.get("pick_list_values") or []:
        value = entry.get("actual_value", entry.get("display_value")) if isinstance(entry, dict) else entry
        if isinstance(value, str) and value != "-None-":
            values.append(value)
    lookup = item.get("lookup") if isinstance(item.get("lookup"), dict) else {}
    target = lookup.get("module")
    lookup_module = target.get("api_name") if isinstance(target, dict) else target
    length = item.get("length")
    api_name = str(item.get("api_name") or "")
    system_check = SYSTEM_DUPLICATE_CHECK_FIELDS.get(module, "Name")
    return CrmField(
        api_name=api_name,
        data_type=str(item.get("data_type") or ""),
        length=length if isinstance(length, int) and not isinstance(length, bool) else None,
        unique=unique,
        custom_field=bool(item.get("custom_field")),
        pick_list_values=tuple(values),
        lookup_module=str(lookup_module) if lookup_module else None,
        duplicate_check=unique or api_name == system_check,
        read_only=bool(item.get("read_only") or item.get("field_read_only")),
    )


def crm_fields(module: str, body: Any) -> list[CrmField]:
    """Read the answer of ``GET /settings/fields``; ValueError when it is not that shape."""
    fields = body.get("fields") if isinstance(body, dict) else None
    if not isinstance(fields, list) or not all(isinstance(item, dict) and item.get("api_name") for item in fields):
        raise ValueError("not a field list")
    return [crm_field(module, item) for item in fields]


def _rate_limit_wait(response: requests.Response) -> float | None:
    """Seconds a 429 asks us to wait: ``details.retry_after`` of the body (Zoho's sample) or a Retry-After header."""
    # Zoho documents no Retry-After header; the value in the body is taken as seconds.
    body = _body(response)
    details = body.get("details") if isinstance(body, dict) and isinstance(body.get("details"), dict) else {}
    wait = details.get("retry_after")
    if isinstance(wait, (int, float, str)) and not isinstance(wait, bool):
        seconds = retry_after_seconds(str(wait))
        if seconds is not None:
            return seconds
    return retry_after_seconds(response.headers.get("Retry-After"))


# Each data centre's accounts server and API domain (api_domain normally comes with the token).
DATA_CENTRES = {
    "accounts.zoho.com": "www.zohoapis.com", "accounts.zoho.eu": "www.zohoapis.eu",
    "accounts.zoho.in": "www.zohoapis.in", "accounts.zoho.com.au": "www.zohoapis.com.au",
    "accounts.zoho.jp": "www.zohoapis.jp", "accounts.zoho.com.cn": "www.zohoapis.com.cn",
    "accounts.zoho.sa": "www.zohoapis.sa", "accounts.zohocloud.ca": "www.zohoapis.ca",
}


def api_domain_for(accounts_url: str) -> str:
    """The API domain of the data centre whose accounts server is ``accounts_url`` (Canada: accounts.zohocloud.ca)."""
    parts = urlsplit(accounts_url)
    host = (parts.hostname or "").lower()
    if host in DATA_CENTRES:
        return f"{parts.scheme}://{DATA_CENTRES[host]}"
    return accounts_url.rstrip("/")  # a simulator serves both on one URL


def _check_transport(url: str, allow_http: bool, what: str) -> None:
    scheme = urlsplit(url).scheme
    if scheme == "https" or (scheme == "http" and (allow_http or is_loopback(url))):
        return
    raise ValueError(f"{what} must be an https URL (plain http only for a local simulator): {url!r}")


def _body(response: requests.Response) -> Any:
    """Return the JSON body, or the text when it is not JSON (a proxy's error page); parsed once per response."""
    cached = getattr(response, "_syncbridge_body", _UNREAD)
    if cached is not _UNREAD:
        return cached
    if not response.content:
        body: Any = None
    else:
        try:
            body = response.json()
        except ValueError:
            body = response.text[:2000]
    response._syncbridge_body = body  # type: ignore[attr-defined]
    return body


_UNREAD = object()


def credits_of(call: str, response: requests.Response, records: int) -> int:
    """The credits Zoho charges for ``response`` to a ``call`` of ``records`` records (0: not charged)."""
    status = response.status_code
    if status in (401, 429) or status >= 500:
        return 0
    if call in WRITE_CALLS and records > 0:
        body = _body(response) if status >= 400 else None
        if isinstance(body, dict) and body.get("code") in REFUSED_BEFORE_RECORDS:
            return 1
        return max(1, math.ceil(records / RECORDS_PER_CREDIT))
    return 1


def _records_read(response: requests.Response) -> int:
    """How many records a read answered with (its ``data``)."""
    if response.status_code != 200:
        return 0
    body = _body(response)
    data = body.get("data") if isinstance(body, dict) else None
    return len(data) if isinstance(data, list) else 0


class CreditCounter:
    """Writes each call's credits to a ledger without ever failing or holding up the call.

    A failed write is logged; the ledger is then left alone for ``pause`` seconds while the
    uses wait in memory (at most ``max_pending``), and written with the next use after it.

    With ``flush_every`` (seconds) the uses are summed in memory per minute, call type and
    purpose and written together at most that often, in one transaction, instead of one
    write per call: with the first call more than ``flush_every`` seconds after the last write,
    and by :meth:`flush` (the worker calls it when it stops). A process that dies loses what it
    held: the calls of at most ``flush_every`` seconds after its last write (an idle process
    holds them until its next call or its stop).
    """

    def __init__(self, ledger: CreditLedger, *, pause: float = LEDGER_PAUSE, max_pending: int = MAX_PENDING_USES,
                 monotonic: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC), flush_every: float = 0.0) -> None:
        self.ledger = ledger
        self._pause = pause
        self._max_pending = max_pending
        self._monotonic = monotonic
        self._now = now
        self._lock = threading.Lock()
        self._pending: list[CreditUse] = []
        self._resume_at = 0.0
        self._dropped = 0
        self._flush_every = flush_every
        self._held: dict[tuple[datetime, str, str], CreditUse] = {}    # summed, not yet written
        self._next_flush = monotonic() + flush_every

    def note(self, use: CreditUse) -> None:
        """Write ``use`` (and those waiting); on failure keep them for later and log."""
        if self._flush_every <= 0:
            self._write([use])
            return
        stamped = use if use.at is not None else replace(use, at=self._now())
        key = (credit_minute(stamped.at or self._now()), use.call, use.purpose)
        with self._lock:
            held = self._held.get(key)
            self._held[key] = stamped if held is None else replace(
                held, credits=held.credits + use.credits, records=held.records + use.records,
                calls=held.calls + use.calls)
            if self._monotonic() < self._next_flush:
                return
            self._next_flush = self._monotonic() + self._flush_every
        self.flush()

    def flush(self) -> None:
        """Write the uses held in memory (and those waiting) now."""
        with self._lock:
            held = list(self._held.values())
            self._held.clear()
        if held or self._pending:
            self._write(held)

    def _write(self, uses: list[CreditUse]) -> None:
        with self._lock:
            if self._monotonic() < self._resume_at:
                self._keep([replace(use, at=use.at or self._now()) for use in uses])
                return
            waiting, self._pending = [*self._pending, *uses], []
        if len(waiting) > 1:
            try:
                self.ledger.spend_many(waiting)
            except Exception as exc:  # noqa: BLE001 - counting must never fail the call it counts
                self._failed(exc, waiting)
            return
        for done, item in enumerate(waiting):
            try:
                self.ledger.spend(item)
            except Exception as exc:  # noqa: BLE001 - counting must never fail the call it counts
                self._failed(exc, waiting[done:])
                return

    def _failed(self, exc: Exception, unwritten: list[CreditUse]) -> None:
        with self._lock:
            self._resume_at = self._monotonic() + self._pause
            self._keep([replace(rest, at=rest.at or self._now()) for rest in unwritten])
            waiting_now, dropped = len(self._pending), self._dropped
        log.warning("could not count Zoho API credits (%s: %s); %d call(s) wait, %d dropped; "
                    "next try in %.0f s", type(exc).__name__, exc, waiting_now, dropped, self._pause)

    def _keep(self, uses: list[CreditUse]) -> None:
        self._pending.extend(uses)
        excess = len(self._pending) - self._max_pending
        if excess > 0:
            del self._pending[:excess]
            self._dropped += excess

    def waiting(self) -> int:
        """How many uses wait for the ledger to work again."""
        with self._lock:
            return len(self._pending)




# One lock per grant for every client in this process: two clients sharing a token
# store must not both spend one of the refresh token's 10 mints per 10 minutes.
_REFRESH_LOCKS: dict[tuple[str, str, str], threading.Lock] = {}
_REFRESH_LOCKS_GUARD = threading.Lock()


def _refresh_lock(key: tuple[str, str, str]) -> threading.Lock:
    with _REFRESH_LOCKS_GUARD:
        return _REFRESH_LOCKS.setdefault(key, threading.Lock())


class ZohoClient:
    """Zoho CRM records API (https://www.zoho.com/crm/developer/docs/api/v7/) with a token shared through the store."""

    # OAuth follows https://www.zoho.com/crm/developer/docs/api/v7/refresh.html; the access
    # token lives in token_store (provider "zoho") so every process shares it. Every write
    # carries "trigger": [] so the sync's own writes fire no workflow rule back at us.

    def __init__(
        self,
        *,
        accounts_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        token_store: TokenStore,
        api_url: str = "",
        api_version: str = "v7",
        timeout: float = 15.0,
        refresh_margin: float = 300.0,
        session: requests.Session | None = None,
        allow_http: bool = False,
        redirect_uri: str = "",
        scope: str = "ZohoCRM.modules.ALL",
        ledger: CreditLedger | CreditCounter | None = None,
        purpose: str = SYNC_PURPOSE,
    ) -> None:
        """``ledger``: where each API call's credits are counted (none: not counted); ``purpose``: why the calls are made."""
        _check_transport(accounts_url, allow_http, "the Zoho accounts URL")
        self.redirect_uri = redirect_uri
        self.scope = scope
        if api_url:
            _check_transport(api_url, allow_http, "the Zoho API URL")
        self._accounts_url = accounts_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._store = token_store
        self._api_url = api_url.rstrip("/")
        self._api_version = api_version
        self._timeout = timeout
        self._refresh_margin = refresh_margin
        self._session = session or requests.Session()
        self._allow_http = allow_http
        self._lock = _refresh_lock((self._accounts_url, client_id, refresh_token))
        self._cached: OAuthToken | None = None
        self.purpose = purpose
        self._credits = ledger if isinstance(ledger, CreditCounter) or ledger is None else CreditCounter(ledger)
        self._updates = self._update_line()

    def with_purpose(self, purpose: str) -> ZohoClient:
        """This client (its token, session and credit ledger) counting its calls' credits for ``purpose``."""
        other = copy.copy(self)
        other.purpose = purpose
        other._updates = other._update_line()    # a call carries the updates of one purpose only
        return other

    def _update_line(self) -> GroupedWrites[dict[str, Any], RecordResult]:
        """Updates of one module from many threads: those that come while one is in flight go as the next call."""
        def send(module: Hashable, records: list[dict[str, Any]]) -> list[RecordResult]:
            return self._write("PUT", self._path(str(module)), records, {}, "update", "update")

        return GroupedWrites(send, limit=MAX_RECORDS_PER_CALL, identity=lambda record: str(record.get("id")))

    @classmethod
    def from_settings(cls, settings, token_store: TokenStore, session: requests.Session | None = None,
                      redirect_uri: str = "", *, ledger: CreditLedger | CreditCounter | None = None,
                      purpose: str = SYNC_PURPOSE) -> ZohoClient:
        """Build the client from :class:`syncbridge.config.Settings` (``redirect_uri``: the connect callback)."""
        return cls(
            ledger=ledger,
            purpose=purpose,
            redirect_uri=redirect_uri,
            accounts_url=settings.zoho_accounts_url,
            client_id=settings.zoho_client_id,
            client_secret=settings.zoho_client_secret,
            refresh_token=settings.zoho_refresh_token,
            token_store=token_store,
            api_url=settings.zoho_api_url,
            timeout=settings.http_timeout,
            refresh_margin=settings.token_refresh_margin,
            session=session,
            allow_http=settings.allow_http_oauth,
        )

    # ------------------------------------------------------------------ connecting
    # The reference documents no PKCE for Zoho's accounts server: the code flow goes without it.
    supports_pkce = False

    def authorization_url(self, state: str, code_challenge: str = "") -> str:  # noqa: ARG002 - no PKCE at Zoho
        """The consent URL (``access_type=offline`` and ``prompt=consent``: only then is a refresh token issued)."""
        query = urlencode({"scope": self.scope, "client_id": self._client_id, "response_type": "code",
                           "access_type": "offline", "prompt": "consent", "redirect_uri": self.redirect_uri,
                           "state": state})
        return f"{self._accounts_url}/oauth/v2/auth?{query}"

    def exchange_code(self, code: str, code_verifier: str = "") -> OAuthToken:  # noqa: ARG002 - no PKCE at Zoho
        """Trade the code of the consent redirect for a grant and share it through the store.

        The code goes to the configured accounts server: the ``accounts-server`` of the
        redirect is not followed, so the client secret never leaves for a host the
        settings do not name.
        """
        form = {"grant_type": "authorization_code", "client_id": self._client_id,
                "client_secret": self._client_secret, "redirect_uri": self.redirect_uri, "code": code}
        url = f"{self._accounts_url}/oauth/v2/token"
        try:
            response = self._session.post(url, data=form, headers={"Accept": "application/json"}, timeout=self._timeout)
        except requests.RequestException as exc:
            raise ZohoUnavailable(f"token request to {self._accounts_url} failed: {type(exc).__name__}") from exc
        body = _body(response)
        if response.status_code >= 500 or response.status_code == 429:
            raise ZohoUnavailable("Zoho accounts server failed", status=response.status_code, body=body)
        if not isinstance(body, dict) or body.get("error") or not body.get("access_token"):
            error = body.get("error") if isinstance(body, dict) else None
            raise ZohoRejected(f"Zoho refused the authorization code ({error or response.status_code})",
                               status=response.status_code, code=str(error) if error else None, body=body)
        if not body.get("refresh_token"):
            raise ZohoRejected("Zoho granted no refresh token (consent with access_type=offline is needed)",
                               status=response.status_code)
        lifetime = float(body.get("expires_in_sec") or body.get("expires_in") or 3600)
        token = OAuthToken(
            access_token=body["access_token"], refresh_token=body["refresh_token"], expires_at=time.time() + lifetime,
            extra={"api_domain": str(body.get("api_domain") or "").rstrip("/"), "scope": body.get("scope", ""),
                   "expires_in": lifetime, "granted_by": "consent"},
        )
        self._store.save(PROVIDER, token)
        self._cached = token
        log.info("zoho connected by consent")
        return token

    # ------------------------------------------------------------------ tokens
    def access_token(self) -> OAuthToken:
        """Return a live access token, minting one when the shared one is absent or expiring."""
        return self._token()

    def _fresh(self, token: OAuthToken | None, stale: str | None) -> bool:
        return (token is not None and bool(token.access_token) and token.access_token != stale
                and token.expires_at - time.time() > self._refresh_margin)

    def _token(self, stale: str | None = None) -> OAuthToken:
        """Return the shared token unless it expires soon or is ``stale`` (refused by the API)."""
        # a token this process already holds saves a store read per call; any live token works
        if self._fresh(self._cached, stale):
            return self._cached
        token = self._store.load(PROVIDER)
        if not self._fresh(token, stale):
            with self._lock:
                # another thread (or worker, through the store) may have refreshed meanwhile
                token = self._store.load(PROVIDER)
                if not self._fresh(token, stale):
                    token = self._refresh(token)
        self._cached = token
        return token

    def _reconnect(self, detail: str, **kwargs: Any) -> ZohoReconnectNeeded:
        self._store.set_status(PROVIDER, "reconnect_needed", detail)
        log.warning("zoho connection needs a reconnect: %s", detail)
        return ZohoReconnectNeeded(detail, **kwargs)

    def _refresh(self, current: OAuthToken | None) -> OAuthToken:
        """Mint an access token from the refresh token and share it through the store."""
        # A plain form POST rather than requests-oauthlib's OAuth2Session: Zoho answers a
        # bad grant with HTTP 200 {"error": "invalid_code"} and throttles with 400
        # "Access Denied", which oauthlib turns into generic OAuth2Errors without the HTTP
        # status; the session would also send "Bearer" instead of "Zoho-oauthtoken", never
        # refreshes on a 401, and takes plain-http simulators only through the process-wide
        # OAUTHLIB_INSECURE_TRANSPORT variable.
        # A grant given by consent on the dashboard replaces the configured refresh token.
        consented = current.refresh_token if current and current.extra.get("granted_by") == "consent" else ""
        refresh_token = consented or self._refresh_token or (current.refresh_token if current else "")
        if not refresh_token:
            raise self._reconnect("no Zoho refresh token: connect Zoho CRM first")
        url = f"{self._accounts_url}/oauth/v2/token"
        form = {"grant_type": "refresh_token", "client_id": self._client_id,
                "client_secret": self._client_secret, "refresh_token": refresh_token}
        try:
            response = self._session.post(url, data=form, headers={"Accept": "application/json"}, timeout=self._timeout)
        except requests.RequestException as exc:
            raise ZohoUnavailable(f"token request to {self._accounts_url} failed: {type(exc).__name__}") from exc
        body = _body(response)
        status = response.status_code
        error = body.get("error") if isinstance(body, dict) else None
        description = str(body.get("error_description", "")) if isinstance(body, dict) else ""
        if status >= 500 or status == 429:
            raise ZohoUnavailable("Zoho accounts server failed", status=status, body=body,
                                  retry_after=retry_after_seconds(response.headers.get("Retry-After")))
        if error == "Access Denied" or "too many requests" in description.lower():
            raise ZohoUnavailable("Zoho throttles token refreshes (10 per 10 minutes per refresh token)",
                                  status=status, code=str(error), body=body, retry_after=THROTTLE_RETRY_AFTER)
        if error or status in (400, 401, 403):
            raise self._reconnect(f"Zoho refused the refresh token ({error or status})", status=status,
                                  code=str(error) if error else None, body=body)
        if status != 200 or not isinstance(body, dict) or not body.get("access_token"):
            raise ZohoUnavailable("unexpected answer from the Zoho token endpoint", status=status, body=body)
        api_domain = str(body.get("api_domain") or "").rstrip("/")
        if api_domain and not self._api_url:
            try:
                _check_transport(api_domain, self._allow_http, "the api_domain Zoho returned")
            except ValueError as exc:
                raise ZohoUnavailable(str(exc), status=status) from exc
        # very old accounts servers gave expires_in in milliseconds next to expires_in_sec
        lifetime = float(body.get("expires_in_sec") or body.get("expires_in") or 3600)
        token = OAuthToken(
            access_token=body["access_token"],
            refresh_token=refresh_token,
            expires_at=time.time() + lifetime,
            extra={"api_domain": api_domain, "scope": body.get("scope", ""), "expires_in": lifetime,
                   **({"granted_by": "consent"} if consented else {})},
        )
        self._store.save(PROVIDER, token)
        log.info("zoho access token refreshed (valid %.0f s)", lifetime)
        return token

    # ------------------------------------------------------------------ HTTP
    def _api_base(self, token: OAuthToken) -> str:
        # api_domain comes with every token; the fallback maps the accounts server to its data centre
        domain = self._api_url or token.extra.get("api_domain") or api_domain_for(self._accounts_url)
        return f"{domain}/crm/{self._api_version}"

    def _send(self, method: str, path: str, token: OAuthToken, **kwargs: Any) -> requests.Response:
        url = f"{self._api_base(token)}/{path}"
        version = kwargs.pop("api_version", None)
        if version:     # an API only a newer version has (webhook failures: v8)
            url = f"{self._api_base(token).rsplit('/', 1)[0]}/{version}/{path}"
        headers = {"Authorization": f"Zoho-oauthtoken {token.access_token}", "Accept": "application/json",
                   **kwargs.get("headers", {})}
        rest = {name: value for name, value in kwargs.items() if name != "headers"}
        try:
            return self._session.request(method, url, headers=headers, timeout=self._timeout, **rest)
        except requests.Timeout as exc:
            raise ZohoUnavailable(f"{method} {path} timed out after {self._timeout:g} s") from exc
        except requests.RequestException as exc:
            raise ZohoUnavailable(f"{method} {path} failed: {type(exc).__name__}: {exc}") from exc

    def _request(self, method: str, path: str, *, call: str, records: int | None = None,
                 **kwargs: Any) -> requests.Response:
        """Call the API and count its credits (``records``: written, else those read); on a refused token
        refresh once and retry once."""
        token = self._token()
        response = self._send(method, path, token, **kwargs)
        for _ in range(REFRESHES_PER_CALL):
            if response.status_code != 401:
                break
            body = _body(response)
            code = body.get("code") if isinstance(body, dict) else None
            if code not in TOKEN_ERROR_CODES:
                raise self._reconnect(f"Zoho refuses the access token ({code or 401})", status=401, code=code,
                                      body=body)
            # Refreshed unless another thread already did; with many calls in flight the token another one
            # refreshed may be refused as well, so a few rounds before a person is asked to reconnect.
            token = self._token(stale=token.access_token)
            response = self._send(method, path, token, **kwargs)
        if response.status_code != 401:
            self._count(call, response, records)
            return response
        body = _body(response)
        code = body.get("code") if isinstance(body, dict) else None
        raise self._reconnect(f"Zoho refuses the access token ({code or 401})", status=401, code=code, body=body)

    def _count(self, call: str, response: requests.Response, records: int | None) -> None:
        """Note the credits Zoho charged for ``response`` in the ledger (never raises)."""
        if self._credits is None:
            return
        try:
            written = records if records is not None else 0
            credits = credits_of(call, response, written)
            if credits:
                counted = written if records is not None else _records_read(response)
                self._credits.note(CreditUse(call, credits, purpose=self.purpose, records=counted))
        except Exception:  # noqa: BLE001 - counting must never fail the call it counts
            log.warning("could not count the Zoho API credits of a %s call", call, exc_info=True)

    def _page(self, response: requests.Response, what: str, key: str = "data") -> tuple[list[Any], dict[str, Any]]:
        """The items and ``info`` of one page of a list; no content (204, or 304 to If-Modified-Since) is none."""
        if response.status_code in (204, 304):
            return [], {}
        if response.status_code != 200:
            raise self._fail(response, what)
        body = _body(response)
        items = body.get(key) if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ZohoUnavailable(f"{what}: unexpected answer", status=200, body=body)
        info = body.get("info") if isinstance(body.get("info"), dict) else {}
        return items, info

    @staticmethod
    def _fail(response: requests.Response, what: str) -> ZohoError:
        """Build the error for a response that is not the expected answer."""
        body = _body(response)
        status = response.status_code
        code = field = None
        message = f"{what}: HTTP {status}"
        if isinstance(body, dict):
            code = body.get("code") or body.get("error")
            details = body.get("details") if isinstance(body.get("details"), dict) else {}
            field = details.get("api_name")
            if body.get("message"):
                message = f"{what}: {body['message']}"
        if status == 429:
            return ZohoUnavailable(message, status=status, code=code, body=body, retry_after=_rate_limit_wait(response))
        if status >= 500 or status == 408:
            return ZohoUnavailable(message, status=status, code=code, body=body)
        return ZohoRejected(message, status=status, code=code, field=field, body=body)

    @staticmethod
    def _path(*parts: str) -> str:
        return "/".join(quote(str(p), safe="") for p in parts)

    # ------------------------------------------------------------------ records
    def get_record(self, module: str, record_id: str) -> dict[str, Any] | None:
        """Return the full record, or None when Zoho does not have it."""
        response = self._request("GET", self._path(module, record_id), call="get_record")
        if response.status_code == 204:
            return None
        body = _body(response)
        code = body.get("code") if isinstance(body, dict) else None
        # Zoho's answer for a missing id is not settled: 204, 400/404 INVALID_DATA or an empty data
        if response.status_code in (400, 404) and code == "INVALID_DATA":
            return None
        if response.status_code != 200:
            raise self._fail(response, f"get {module} {record_id}")
        if not isinstance(body, dict) or not isinstance(body.get("data", []), list):
            raise ZohoUnavailable(f"get {module} {record_id}: unexpected answer", status=200, body=body)
        data = body.get("data") or []
        return data[0] if data else None

    def insert_records(self, module: str, records: Sequence[dict[str, Any]]) -> list[RecordResult]:
        """Insert up to 100 records with ``"trigger": []``; one result per record, in order."""
        return self._write("POST", self._path(module), records, {}, "insert", "insert")

    def update_records(self, module: str, records: Sequence[dict[str, Any]]) -> list[RecordResult]:
        """Update up to 100 records (each carries its ``id``) with ``"trigger": []``; one result per record, in order.

        Updates of one module that other threads ask for while one is in flight go out together
        as the next call (:mod:`syncbridge.adapters.grouped`): Zoho charges a credit per ten records.
        """
        records = list(records)
        if len(records) > MAX_RECORDS_PER_CALL:
            raise ValueError(f"Zoho takes at most {MAX_RECORDS_PER_CALL} records per call, got {len(records)}")
        return self._updates(module, records)

    def upsert_records(
        self, module: str, records: Sequence[dict[str, Any]], duplicate_check_fields: Sequence[str]
    ) -> list[RecordResult]:
        """Upsert up to 100 records, matched on ``duplicate_check_fields``, with ``"trigger": []``."""
        extra = {"duplicate_check_fields": list(duplicate_check_fields)} if duplicate_check_fields else {}
        return self._write("POST", self._path(module, "upsert"), records, extra, None, "upsert")

    def delete_records(self, module: str, record_ids: Sequence[str]) -> list[RecordResult]:
        """Delete up to 100 records by id without firing workflow rules; one result per id, in order."""
        # https://www.zoho.com/crm/developer/docs/api/v7/delete-records.html
        ids = [str(record_id) for record_id in record_ids]
        if len(ids) > MAX_RECORDS_PER_CALL:
            raise ValueError(f"Zoho deletes at most {MAX_RECORDS_PER_CALL} records per call, got {len(ids)}")
        if not ids:
            return []
        path = self._path(module)
        response = self._request("DELETE", path, call="delete", records=len(ids),
                                 params={"ids": ",".join(ids), "wf_trigger": "false"})
        return self._per_record(response, "DELETE", path, len(ids), "delete")

    def _write(self, method: str, path: str, records: Sequence[dict[str, Any]], extra: dict[str, Any],
               action: str | None, call: str) -> list[RecordResult]:
        records = list(records)
        if len(records) > MAX_RECORDS_PER_CALL:
            raise ValueError(f"Zoho takes at most {MAX_RECORDS_PER_CALL} records per call, got {len(records)}")
        if not records:
            return []
        response = self._request(method, path, call=call, records=len(records),
                                 json={"data": records, **extra, "trigger": []})
        return self._per_record(response, method, path, len(records), action)

    def _per_record(self, response: requests.Response, method: str, path: str, count: int,
                    action: str | None) -> list[RecordResult]:
        """Read the per-record results of a write or delete of ``count`` records."""
        body = _body(response)
        data = body.get("data") if isinstance(body, dict) else None
        per_record = (isinstance(data, list) and len(data) == count
                      and all(isinstance(item, dict) and "status" in item for item in data))
        # when every record fails Zoho answers 400, still with one result per record
        if per_record and (response.status_code in WRITE_STATUSES or response.status_code == 400):
            return [record_result(item, action) for item in data]
        if response.status_code in WRITE_STATUSES:
            # the write may have happened: do not retry blindly, let a person look
            raise ZohoRejected(f"{method} {path}: unexpected answer", status=response.status_code, body=body)
        raise self._fail(response, f"{method} {path}")

    def field_metadata(self, module: str) -> list[CrmField]:
        """The fields of ``module`` with their types (``GET /settings/fields?module=``)."""
        # https://www.zoho.com/crm/developer/docs/api/v7/field-meta.html
        response = self._request("GET", "settings/fields", call="field_metadata", params={"module": module})
        if response.status_code != 200:
            raise self._fail(response, f"fields of {module}")
        body = _body(response)
        try:
            return crm_fields(module, body)
        except ValueError:
            raise ZohoUnavailable(f"fields of {module}: unexpected answer", status=200, body=body) from None

    def list_records(self, module: str, fields: Sequence[str], *,
                     modified_since: datetime | None = None) -> list[dict[str, Any]]:
        """Every record of ``module`` with ``fields`` (at most 50), reading all pages; only those modified after
        ``modified_since`` when given (``If-Modified-Since``: nothing modified answers 304, an empty list)."""
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.records_page(module, fields, cursor=cursor, modified_since=modified_since)
            found.extend(page.records)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    def deleted_records(self, module: str, kind: str = "all") -> list[dict[str, Any]]:
        """The records of ``module`` deleted lately (``GET /{module}/deleted``; kind: all, recycle, permanent)."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            response = self._request("GET", self._path(module, "deleted"), call="deleted_records",
                                     params={"type": kind, "page": page, "per_page": SEARCH_PAGE_SIZE})
            items, info = self._page(response, f"deleted {module}")
            found.extend(items)
            if not info.get("more_records") or not items:
                return found
            page += 1

    def records_page(self, module: str, fields: Sequence[str], *, cursor: str | None = None,
                     modified_since: datetime | None = None) -> RecordPage:
        """One page of ``GET /{module}`` (200 records): ``cursor`` is ``page:N`` or ``token:<page_token>``.

        Page numbers reach the first 2,000 records; the cursor after them carries
        Zoho's ``next_page_token`` (it expires after a day: an expired one is refused).
        """
        names = ",".join(fields)
        headers = {"If-Modified-Since": modified_since.isoformat(timespec="seconds")} if modified_since else {}
        kind, _, value = (cursor or "page:1").partition(":")
        params: dict[str, Any] = {"fields": names, "per_page": SEARCH_PAGE_SIZE}
        if kind == "token" and value:
            params["page_token"] = value
        elif kind == "page" and value.isdigit() and int(value) >= 1:
            params["page"] = int(value)
        else:
            raise ValueError(f"not a cursor of list {module}: {cursor!r}")
        response = self._request("GET", self._path(module), call="list_records", params=params, headers=headers)
        items, info = self._page(response, f"list {module}")
        if not info.get("more_records") or not items:
            return RecordPage(items, None)
        page = params.get("page")
        if page is not None and (page + 1) * SEARCH_PAGE_SIZE <= MAX_PAGED_RECORDS:
            return RecordPage(items, f"page:{page + 1}")
        if not info.get("next_page_token"):
            raise ZohoUnavailable(f"list {module}: more records but no next_page_token", status=200, body=info)
        return RecordPage(items, f"token:{info['next_page_token']}")

    def webhook_failures(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """Failed webhook calls (``GET /crm/v8/settings/automation/webhook_failures``), newest first.

        Each: ``webhook``, ``entity_details`` (module, name, id), ``failure_time``,
        ``failure_reason``; with ``since``, only those that failed at or after it.
        """
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            response = self._request("GET", "settings/automation/webhook_failures", call="webhook_failures",
                                     api_version="v8",
                                     params={"page": page, "per_page": SEARCH_PAGE_SIZE})
            items, info = self._page(response, "webhook failures", key="webhook_failures")
            for item in items:
                failed = aware_time(item.get("failure_time"))
                if since is None or failed is None or failed >= since:
                    found.append(item)
            # Newest first: a page ending before ``since`` is the last one needed.
            oldest = aware_time(items[-1].get("failure_time")) if items else None
            if not info.get("more_records") or not items or (since and oldest and oldest < since):
                return found
            page += 1

    def find_records_by_field(self, module: str, field: str, value: Any) -> list[dict[str, Any]]:
        """Every record of ``module`` whose ``field`` equals ``value``."""
        return self.search_records(module, criteria_equals(field, value))

    def search_records(self, module: str, criteria: str) -> list[dict[str, Any]]:
        """Return every record matching ``criteria`` (see :func:`criteria_equals`), reading all pages."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            response = self._request("GET", self._path(module, "search"), call="search",
                                     params={"criteria": criteria, "page": page, "per_page": SEARCH_PAGE_SIZE})
            items, info = self._page(response, f"search {module}")
            found.extend(items)
            if not info.get("more_records") or not items:
                return found
            page += 1
