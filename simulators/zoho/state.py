"""The simulated Zoho CRM's state: records, OAuth grants, webhooks, faults, credits."""
from __future__ import annotations

import copy
import functools
import logging
import math
import queue
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import requests

from simulators.jsoncopy import json_copy
from simulators.zoho.criteria import _digits, _matches, _norm, _plain, _same, parse_criteria
from simulators.zoho.fields import SYSTEM_DUPLICATE_FIELDS, SYSTEM_FIELDS, SimField, default_fields, field_id, module_id

log = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "dev-zoho-client"
DEFAULT_CLIENT_SECRET = "dev-zoho-secret"
DEFAULT_REFRESH_TOKEN = "dev-zoho-refresh-token"
SCOPE = "ZohoCRM.modules.ALL"
MAX_RECORDS_PER_WRITE = 100
MAX_PER_PAGE = 200
MAX_LIST_FIELDS = 50          # fields one get-records call may name
MAX_PAGED_RECORDS = 2000      # records reachable by page number; beyond them only by page_token
PAGE_TOKEN_LIFETIME = 86400   # seconds a page_token stays valid
API_VERSIONS = {f"v{n}" for n in range(2, 9)}
MISSING_RECORD_STYLES = ("204", "400", "404", "empty")

DEFAULT_MANDATORY = {"Contacts": ["Last_Name"], "Accounts": ["Account_Name"], "Deals": ["Deal_Name"], "Leads": ["Last_Name"]}
EMAIL_FIELDS = ("Email", "Secondary_Email")
PHONE_FIELDS = ("Phone", "Mobile", "Home_Phone", "Other_Phone", "Fax")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}([+-]\d{2}:\d{2}|Z)$")
INTEGER_RE = re.compile(r"-?\d+")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")

API_USER = {"name": "Sync Service", "id": "5725767000000411001", "email": "sync@makler-beispiel.de"}
UI_USER = {"name": "Petra Schmidt", "id": "5725767000000411002", "email": "petra.schmidt@makler-beispiel.de"}

AUTH_ERRORS = {
    "INVALID_TOKEN": "invalid oauth token",
    "AUTHENTICATION_FAILURE": "Authentication failed",
}
FAULT_BODIES = {
    401: {"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"},
    403: {"code": "NO_PERMISSION", "details": {"permissions": ["Crm_Implied_Api_Access"]}, "message": "permission denied",
          "status": "error"},
    404: {"code": "INVALID_URL_PATTERN", "details": {}, "message": "Please check if the URL trying to access is a correct one",
          "status": "error"},
    429: {"code": "TOO_MANY_REQUESTS", "details": {}, "message": "The rate limit has exceeded", "status": "error"},
    500: {"code": "INTERNAL_ERROR", "details": {}, "message": "Internal Server Error occurred while processing this request",
          "status": "error"},
}



_copy = json_copy   # a deep copy of a record


def org_timezone():
    """The org's time zone (Europe/Berlin)."""
    return _tz()


@functools.lru_cache(maxsize=1)
def _tz():
    """Return the org's time zone; the demo org is in Germany."""
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("Europe/Berlin")
    except Exception:  # noqa: BLE001 - no tz database installed: a fixed offset still has the right shape
        return timezone(timedelta(hours=1))


# The last second zoho_time formatted and its text: the records written within one second share it.
_last_time: tuple[int, str] = (0, "")


def zoho_time(epoch: float | None = None) -> str:
    """Format a time the way Zoho does: ``2026-11-23T14:08:26+01:00``."""
    global _last_time
    # the second datetime.fromtimestamp() would show (it rounds to the nearest microsecond)
    second = math.floor((time.time() if epoch is None else epoch) + 5e-7)
    last = _last_time
    if last[0] == second and last[1]:
        return last[1]
    text = datetime.fromtimestamp(second, _tz()).isoformat(timespec="seconds")
    _last_time = (second, text)
    return text


def _error(code: str, message: str, details: dict | None = None) -> dict[str, Any]:
    return {"code": code, "details": details or {}, "message": message, "status": "error"}


class SimulatorInputError(ValueError):
    """A simulated user or seed gave a record the CRM would refuse; ``result`` is Zoho's answer."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(f"{result.get('code')}: {result.get('message')} {result.get('details')}")
        self.result = result



# ------------------------------------------------------------------ state
@dataclass
class Fault:
    """The next ``remaining`` matching calls answer ``status`` (or only wait ``delay`` when status is None)."""

    status: int | None
    remaining: int
    path_prefix: str | None
    delay: float = 0.0
    retry_after: float | None = None   # a 429 names it in details.retry_after
    retry_after_header: bool = False   # ... and in a Retry-After header too

    def applies_to(self, path: str) -> bool:
        return path.startswith(self.path_prefix) if self.path_prefix else path.startswith("/crm/")


@dataclass
class Webhook:
    """A workflow rule (or Notification API channel) of ``module`` that calls ``url`` on create, edit and/or delete."""

    id: str
    module: str
    url: str
    events: tuple[str, ...]
    style: str
    token: str | None
    channel_id: str

    @property
    def name(self) -> str:
        return f"{self.module} {'/'.join(self.events)} {self.style}"

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "module": self.module, "url": self.url, "events": list(self.events),
                "style": self.style, "channel_id": self.channel_id, "has_token": self.token is not None}


@dataclass
class _Change:
    module: str
    record_id: str
    operation: str          # create | edit | delete
    modified_time: str
    fields: list[str] = field(default_factory=list)


class ZohoState:
    """Everything the simulated CRM knows; thread-safe (one re-entrant lock)."""

    # Knobs a test or demo may set directly: token_lifetime, mint_limit / mint_window
    # (access tokens per refresh token per window), missing_record_style ("204", "400",
    # "404" or "empty": Zoho's answer for a missing id is not settled), auth_error_code
    # ("INVALID_TOKEN" or "AUTHENTICATION_FAILURE"), search_index_delay (seconds),
    # max_concurrent (API calls in flight at once, beyond which a call answers 429
    # TOO_MANY_REQUESTS; None = unlimited), api_domain (None = this server's URL),
    # webhook_timeout, mandatory_fields (module -> API names).  The field metadata
    # (simulators.zoho.fields) is per instance: change it with set_field, add_field,
    # drop_field and set_unique_fields; reset() restores the seed.

    def __init__(self, modules: Iterable[str] = ("Contacts", "Accounts", "Deals", "Leads"), *,
                 token_lifetime: int = 3600, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.RLock()
        self.clock = clock   # seconds; when records were touched, for search_index_delay
        self.wall_clock = wall_clock   # epoch seconds; Created_Time / Modified_Time / deleted_time of records
        self._module_names = tuple(modules)
        self.token_lifetime = token_lifetime
        self.mint_limit = 10
        self.mint_window = 600.0
        self.missing_record_style = "204"
        self.auth_error_code = "INVALID_TOKEN"
        self.search_index_delay = 0.0
        self.max_concurrent: int | None = None
        self.api_domain: str | None = None
        self.webhook_timeout = 5.0
        self.api_user = dict(API_USER)
        self.ui_user = dict(UI_USER)
        self._clients: dict[str, str] = {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET}
        self._refresh_tokens: dict[str, dict[str, Any]] = {
            DEFAULT_REFRESH_TOKEN: {"client_id": DEFAULT_CLIENT_ID, "scope": SCOPE, "revoked": False}}
        self._access_tokens: dict[str, dict[str, Any]] = {}
        self._auth_codes: dict[str, dict[str, Any]] = {}
        self._mints: dict[str, deque] = {}
        self._minted_total: dict[str, int] = {}
        self._id_seq = 0
        self._hook_seq = 0
        self._in_flight = 0
        self._last_base_url = "https://www.zohoapis.eu"
        self._outbox: queue.Queue = queue.Queue()
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self._dispatcher: threading.Thread | None = None
        self._reset_data()

    def _reset_data(self) -> None:
        self._records: dict[str, dict[str, dict[str, Any]]] = {m: {} for m in self._module_names}
        self._touched: dict[tuple[str, str], float] = {}
        self._deleted: dict[str, list[dict[str, Any]]] = {m: [] for m in self._module_names}
        self._page_tokens: dict[str, dict[str, Any]] = {}
        # (module, unique field) -> normalized value -> record ids, built on first use
        self._unique_index: dict[tuple[str, str], dict[str, set[str]]] = {}
        self.mandatory_fields: dict[str, list[str]] = {m: list(DEFAULT_MANDATORY.get(m, [])) for m in self._module_names}
        self._fields: dict[str, dict[str, SimField]] = default_fields(self._module_names)
        self._unique_cache: dict[str, list[str]] = {}   # module -> _unique_names(module)
        self._faults: list[Fault] = []
        self._webhooks: list[Webhook] = []
        self._deliveries: list[dict[str, Any]] = []
        self._failures: list[dict[str, Any]] = []
        self._credits = 0
        self._calls = 0
        self._peak_in_flight = self._in_flight   # the most API calls in flight at once since the reset
        self._refused_calls = 0                  # API calls answered 429 for exceeding max_concurrent

    # ---------------------------------------------------------------- basics
    @property
    def modules(self) -> tuple[str, ...]:
        return self._module_names

    def has_module(self, module: str) -> bool:
        return module in self._records

    def reset(self, *, oauth: bool = False) -> None:
        """Forget records, faults, webhooks, deliveries, credits and call counts; with ``oauth`` also issued tokens."""
        with self._lock:
            self._reset_data()
            if oauth:
                self._access_tokens.clear()
                self._auth_codes.clear()
                self._mints.clear()
                self._minted_total.clear()
                self._refresh_tokens = {
                    DEFAULT_REFRESH_TOKEN: {"client_id": DEFAULT_CLIENT_ID, "scope": SCOPE, "revoked": False}}

    # ---------------------------------------------------------------- field metadata
    def fields(self, module: str) -> list[dict[str, Any]]:
        """The fields of ``module`` in the shape of ``GET /settings/fields?module=``."""
        with self._lock:
            self._require_module(module)
            return [f.meta(field_id(module, f.api_name)) for f in self._fields[module].values()]

    def field(self, module: str, api_name: str) -> SimField | None:
        """A copy of one field's metadata, or None when the module has no such field."""
        with self._lock:
            self._require_module(module)
            found = self._fields[module].get(api_name)
            return copy.deepcopy(found) if found is not None else None

    def add_field(self, module: str, api_name: str, data_type: str = "text", **options: Any) -> None:
        """Create (or replace) a field, custom unless told otherwise: ``add_field("Deals", "Note", "textarea")``."""
        options.setdefault("custom_field", True)
        with self._lock:
            self._require_module(module)
            self._fields[module][api_name] = SimField(api_name, data_type, **options)
            self._forget_index(module)

    def set_field(self, module: str, api_name: str, **changes: Any) -> None:
        """Change properties of an existing field, e.g. ``set_field("Contacts", "Kundennummer", unique=False)``."""
        with self._lock:
            self._require_module(module)
            if api_name not in self._fields[module]:
                raise KeyError(f"{module} has no field {api_name!r}")
            target = self._fields[module][api_name]
            for key, value in changes.items():
                if not hasattr(target, key):
                    raise TypeError(f"unknown field property {key!r}")
                setattr(target, key, value)
            self._forget_index(module)

    def drop_field(self, module: str, api_name: str) -> None:
        """Delete a field from the module (writes naming it are refused from now on)."""
        with self._lock:
            self._require_module(module)
            self._fields[module].pop(api_name, None)
            self._forget_index(module)

    @property
    def unique_fields(self) -> dict[str, list[str]]:
        """The fields marked "Do not allow duplicate values", per module."""
        with self._lock:
            return {m: [f.api_name for f in fields.values() if f.unique] for m, fields in self._fields.items()}

    def _unique_names(self, module: str) -> list[str]:
        """The unique fields of one module (what :attr:`unique_fields` has for it); kept until its fields change."""
        names = self._unique_cache.get(module)
        if names is None:
            names = self._unique_cache[module] = [f.api_name for f in self._fields.get(module, {}).values() if f.unique]
        return names

    def set_unique_fields(self, module: str, *fields: str) -> None:
        """Make exactly ``fields`` of ``module`` unique (a missing one is created as a custom text field)."""
        with self._lock:
            self._require_module(module)
            for name in fields:
                if name not in self._fields[module]:
                    self._fields[module][name] = SimField(name, "text", custom_field=True)
            for item in self._fields[module].values():
                item.unique = item.api_name in fields
            self._forget_index(module)

    def _forget_index(self, module: str) -> None:
        self._unique_cache.pop(module, None)
        for key in [k for k in self._unique_index if k[0] == module]:
            del self._unique_index[key]

    def _holders(self, module: str, name: str, value: Any) -> set[str]:
        """Ids of the records of ``module`` whose ``name`` equals ``value`` (case-insensitive)."""
        index = self._unique_index.get((module, name))
        if index is None:
            index = {}
            for record_id, record in self._records[module].items():
                if record.get(name) is not None:
                    index.setdefault(_norm(record[name]), set()).add(record_id)
            self._unique_index[(module, name)] = index
        return index.get(_norm(value), set())

    def _reindex(self, module: str, record_id: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        """Keep the unique-value index in step with one record's change (None: absent)."""
        for (indexed_module, name), index in self._unique_index.items():
            if indexed_module != module:
                continue
            if before is not None and before.get(name) is not None:
                index.get(_norm(before[name]), set()).discard(record_id)
            if after is not None and after.get(name) is not None:
                index.setdefault(_norm(after[name]), set()).add(record_id)

    def duplicate_check_problem(self, module: str, names: list[str] | None) -> dict[str, Any] | None:
        """Zoho's answer (400) to an upsert whose duplicate_check_fields name a field it may not match on, else None."""
        # Zoho allows only system duplicate-check fields and unique custom fields here.
        # The error body for any other field is not documented: INVALID_DATA naming the
        # field and its place in the request is what its other request-level errors look like.
        allowed = self.duplicate_check_allowed(module)
        for position, name in enumerate(names or []):
            if name not in allowed:
                return _error("INVALID_DATA", "the field is neither unique nor a system duplicate check field",
                              {"api_name": name, "json_path": f"$.duplicate_check_fields[{position}]",
                               "supported_values": allowed})
        return None

    def duplicate_check_allowed(self, module: str) -> list[str]:
        """The fields an upsert may name in duplicate_check_fields: system duplicate-check and unique fields."""
        with self._lock:
            return [*SYSTEM_DUPLICATE_FIELDS.get(module, ()), *self._unique_names(module)]

    def _require_module(self, module: str) -> None:
        if module not in self._records:
            raise KeyError(f"unknown module {module!r}")

    def _new_id(self) -> str:
        # Zoho ids are 19-digit strings unique across the org (org prefix + sequence).
        self._id_seq += 1
        return str(5725767000000400000 + self._id_seq * 1003)

    @property
    def credits_used(self) -> int:
        with self._lock:
            return self._credits

    @property
    def api_calls(self) -> int:
        with self._lock:
            return self._calls

    def charge(self, credits: int) -> None:
        """Count one API call costing ``credits``."""
        with self._lock:
            self._credits += credits
            self._calls += 1

    # ---------------------------------------------------------------- OAuth
    def register_client(self, client_id: str, client_secret: str) -> None:
        """Register an OAuth client (an app in Zoho's API console)."""
        with self._lock:
            self._clients[client_id] = client_secret

    def issue_refresh_token(self, client_id: str = DEFAULT_CLIENT_ID, token: str | None = None) -> str:
        """Issue a refresh token to ``client_id`` (a self-client grant)."""
        with self._lock:
            if client_id not in self._clients:
                raise KeyError(f"unknown client {client_id!r}")
            token = token or f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
            self._refresh_tokens[token] = {"client_id": client_id, "scope": SCOPE, "revoked": False}
            return token

    def revoke_refresh_token(self, token: str = DEFAULT_REFRESH_TOKEN) -> None:
        """Revoke a refresh token and the access tokens minted from it."""
        with self._lock:
            if token in self._refresh_tokens:
                self._refresh_tokens[token]["revoked"] = True
            for access, info in list(self._access_tokens.items()):
                if info["refresh_token"] == token:
                    del self._access_tokens[access]

    def expire_access_tokens(self) -> None:
        """Make every issued access token expired (the next API call gets 401)."""
        with self._lock:
            for info in self._access_tokens.values():
                info["expires_at"] = 0.0

    def tokens_minted(self, refresh_token: str | None = None) -> int:
        """Count the access tokens minted (from one refresh token, or in all)."""
        with self._lock:
            if refresh_token is not None:
                return self._minted_total.get(refresh_token, 0)
            return sum(self._minted_total.values())

    def _client_ok(self, client_id: str | None, client_secret: str | None) -> bool:
        expected = self._clients.get(client_id or "")
        return expected is not None and secrets.compare_digest(expected, client_secret or "")

    def _mint(self, refresh_token: str, api_domain: str) -> tuple[int, dict[str, Any]]:
        """Mint an access token, honouring the per-refresh-token throttle."""
        now = time.time()
        window = self._mints.setdefault(refresh_token, deque())
        while window and window[0] <= now - self.mint_window:
            window.popleft()
        if len(window) >= self.mint_limit:
            return 400, {"error": "Access Denied",
                         "error_description": "You have made too many requests continuously. Please try again after some time."}
        window.append(now)
        self._minted_total[refresh_token] = self._minted_total.get(refresh_token, 0) + 1
        access = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        self._access_tokens[access] = {"expires_at": now + self.token_lifetime, "refresh_token": refresh_token}
        return 200, {"access_token": access, "scope": self._refresh_tokens[refresh_token]["scope"],
                     "api_domain": api_domain, "token_type": "Bearer", "expires_in": self.token_lifetime}

    def token_grant(self, params: dict[str, str], base_url: str) -> tuple[int, dict[str, Any]]:
        """Answer ``POST /oauth/v2/token`` for the given form/query parameters."""
        invalid = (200, {"error": "invalid_code"})  # Zoho answers a bad grant with HTTP 200
        api_domain = self.api_domain or base_url
        with self._lock:
            grant = params.get("grant_type")
            if not self._client_ok(params.get("client_id"), params.get("client_secret")):
                return invalid
            if grant == "refresh_token":
                info = self._refresh_tokens.get(params.get("refresh_token") or "")
                if info is None or info["revoked"] or info["client_id"] != params.get("client_id"):
                    return invalid
                return self._mint(params["refresh_token"], api_domain)
            if grant == "authorization_code":
                code = self._auth_codes.get(params.get("code") or "")
                if (code is None or code["expires_at"] < time.time() or code["client_id"] != params.get("client_id")
                        or (params.get("redirect_uri") and params.get("redirect_uri") != code["redirect_uri"])):
                    return invalid
                del self._auth_codes[params["code"]]  # a code is good for one exchange
                refresh = self.issue_refresh_token(code["client_id"])
                status, body = self._mint(refresh, api_domain)
                if status == 200 and code["offline"]:
                    body["refresh_token"] = refresh
                return status, body
            return 200, {"error": "unsupported_grant_type"}

    def authorize(self, params: dict[str, str]) -> str:
        """Consent at once to ``GET /oauth/v2/auth``: return a fresh authorization code."""
        with self._lock:
            if params.get("client_id") not in self._clients:
                raise KeyError("invalid_client")
            if not params.get("redirect_uri"):
                raise KeyError("invalid_redirect_uri")
            code = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
            self._auth_codes[code] = {"client_id": params["client_id"], "redirect_uri": params["redirect_uri"],
                                      "offline": params.get("access_type") == "offline",
                                      "expires_at": time.time() + 120}
            return code

    def check_access_token(self, token: str | None) -> bool:
        """Tell whether ``token`` is a live access token."""
        with self._lock:
            info = self._access_tokens.get(token or "")
            return info is not None and info["expires_at"] > time.time()

    # ---------------------------------------------------------------- faults and concurrency
    def add_fault(self, status: int | None = 500, count: int = 1, path_prefix: str | None = None,
                  delay: float = 0.0, retry_after: float | None = None, retry_after_header: bool = False) -> None:
        """Make the next ``count`` calls under ``/crm/`` (or ``path_prefix``) answer ``status``, or only wait ``delay``."""
        if status is not None and not 400 <= int(status) <= 599:
            raise ValueError("status must be an HTTP error status or None")
        if count < 1 or delay < 0:
            raise ValueError("count must be >= 1 and delay >= 0")
        with self._lock:
            self._faults.append(Fault(None if status is None else int(status), int(count), path_prefix,
                                      float(delay), retry_after, bool(retry_after_header)))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, path: str) -> Fault | None:
        """Consume one use of the first fault that applies to ``path`` and return it."""
        with self._lock:
            for fault in self._faults:
                if fault.applies_to(path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
            return None

    def enter_call(self) -> bool:
        """Count an API call in flight; return False (and count it refused) when that would exceed ``max_concurrent``."""
        with self._lock:
            if self.max_concurrent is not None and self._in_flight >= self.max_concurrent:
                self._refused_calls += 1
                return False
            self._in_flight += 1
            if self._in_flight > self._peak_in_flight:
                self._peak_in_flight = self._in_flight
            return True

    def leave_call(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def begin_call(self, path: str) -> tuple[bool, Fault | None]:
        """:meth:`enter_call` and, when it lets the call in, :meth:`take_fault` of ``path``: one look at the state.

        Only calls of the API (under ``/crm/``) count against ``max_concurrent``: Zoho limits the
        concurrent calls per org and app, not the accounts server's token grants.  The caller
        calls :meth:`leave_call` once such a call is done.
        """
        with self._lock:
            if path.startswith("/crm/") and not self.enter_call():
                return False, None
            return True, self.take_fault(path) if self._faults else None

    @property
    def in_flight(self) -> int:
        """API calls in flight now."""
        return self._in_flight

    def authorize_call(self, base_url: str, token: str | None) -> bool:
        """:meth:`note_base_url` and :meth:`check_access_token` (None: no Zoho-oauthtoken given, refused)."""
        with self._lock:
            self._last_base_url = base_url
            if token is None:
                return False
            info = self._access_tokens.get(token)
            return info is not None and info["expires_at"] > time.time()

    def note_base_url(self, url: str) -> None:
        with self._lock:
            self._last_base_url = url

    @property
    def base_url(self) -> str:
        """Return the API domain put into notifications: ``api_domain`` or the URL last called."""
        return self.api_domain or self._last_base_url

    # ---------------------------------------------------------------- records
    def get(self, module: str, record_id: str) -> dict[str, Any] | None:
        """Return a copy of the record, or None."""
        with self._lock:
            self._require_module(module)
            record = self._records[module].get(str(record_id))
            return _copy(record) if record is not None else None

    def records(self, module: str) -> list[dict[str, Any]]:
        """Return copies of every record of ``module``, oldest first."""
        with self._lock:
            self._require_module(module)
            return copy.deepcopy(list(self._records[module].values()))

    def find(self, module: str, **fields: Any) -> list[dict[str, Any]]:
        """Return copies of the records whose fields equal all given values (case-insensitive)."""
        with self._lock:
            return [r for r in self.records(module)
                    if all(any(_same(c, str(v)) for c in _plain(r.get(k))) for k, v in fields.items())]

    def seed(self, module: str, fields: dict[str, Any]) -> str:
        """Store a record as if it had always been there (no workflow, no credits); return its id."""
        # fields may carry a digit-string "id" so a demo can fix its ids
        fields = dict(fields)
        wanted_id = fields.pop("id", None)
        if wanted_id is not None and not (isinstance(wanted_id, str) and wanted_id.isdigit()):
            raise ValueError("a seeded id must be a digit string")
        with self._lock:
            self._require_module(module)
            if wanted_id is not None and wanted_id in self._records[module]:
                raise ValueError(f"{module} {wanted_id} exists already")
            result, _ = self._insert(module, fields, 0, actor=self.ui_user, record_id=wanted_id)
            if result["status"] != "success":
                raise SimulatorInputError(result)
            # seeded records are old: the search index has long seen them
            self._touched[(module, result["details"]["id"])] = float("-inf")
            return result["details"]["id"]

    def user_create(self, module: str, fields: dict[str, Any]) -> str:
        """A user creates a record in the CRM: workflow rules fire; return the id."""
        with self._lock:
            results = self.write(module, "insert", [fields], actor=self.ui_user, workflow=True)
        if results[0]["status"] != "success":
            raise SimulatorInputError(results[0])
        return results[0]["details"]["id"]

    def user_update(self, module: str, record_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """A user edits a record in the CRM: workflow rules fire; return the record."""
        with self._lock:
            self._require_module(module)
            if str(record_id) not in self._records[module]:
                raise KeyError(f"{module} {record_id} does not exist")
            results = self.write(module, "update", [{**fields, "id": str(record_id)}], actor=self.ui_user, workflow=True)
            if results[0]["status"] != "success":
                raise SimulatorInputError(results[0])
            return self.get(module, record_id)

    def write(self, module: str, operation: str, records: list[Any], *, actor: dict[str, str] | None = None,
              duplicate_check_fields: list[str] | None = None, workflow: bool = False) -> list[dict[str, Any]]:
        """Insert, update or upsert records, firing workflow rules if asked; return Zoho's per-record results."""
        actor = actor or self.api_user
        changes: list[_Change] = []
        results = []
        with self._lock:
            self._require_module(module)
            for index, record in enumerate(records):
                if not isinstance(record, dict):
                    result, change = _error("INVALID_DATA", "invalid data",
                                            {"expected_data_type": "jsonobject", "json_path": f"$.data[{index}]"}), None
                elif operation == "insert":
                    result, change = self._insert(module, record, index, actor=actor)
                elif operation == "update":
                    result, change = self._update(module, record, index, actor=actor)
                elif operation == "upsert":
                    result, change = self._upsert(module, record, index, actor=actor,
                                                  check_fields=duplicate_check_fields)
                else:
                    raise ValueError(f"unknown operation {operation!r}")
                results.append(result)
                if change is not None:
                    changes.append(change)
            if workflow and changes:
                self._fire(changes)
        return results

    def _validate(self, module: str, fields: dict[str, Any], index: int, *, creating: bool, self_id: str | None):
        """Return (clean fields, None) or (None, Zoho's per-record error).

        Every problem of the record is found; one is answered as it is, several as
        ``MULTIPLE_OR_MULTI_ERRORS`` with ``details.errors`` (no ``api_name`` at the top).
        """
        clean: dict[str, Any] = {}
        problems: list[dict[str, Any]] = []
        for name in self.mandatory_fields.get(module, []):
            present = name in fields
            empty = fields.get(name) is None or (isinstance(fields.get(name), str) and not fields[name].strip())
            if (creating and (not present or empty)) or (not creating and present and empty):
                problems.append(_error("MANDATORY_NOT_FOUND", "required field not found",
                                       {"api_name": name, "json_path": f"$.data[{index}].{name}"}))
        known = self._fields[module]
        for name, value in fields.items():
            if name in SYSTEM_FIELDS or name.startswith("$"):
                continue  # read-only on writes; Zoho ignores them
            path = f"$.data[{index}].{name}"
            meta = known.get(name)
            if meta is None:
                # Zoho refuses a field the module does not have (the exact message is not documented)
                problems.append(_error("INVALID_DATA", "invalid data", {"api_name": name, "json_path": path}))
                continue
            if meta.read_only:
                continue  # formula, auto-number and other read-only fields are ignored on writes
            value, problem = self._convert(meta, value)
            if problem is not None:
                problems.append(_error("INVALID_DATA", "invalid data", {**problem, "api_name": name, "json_path": path}))
                continue
            if name not in (p["details"]["api_name"] for p in problems):
                clean[name] = value
        for name in self._unique_names(module):
            value = clean.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            others = sorted(self._holders(module, name, value) - {self_id})
            if others:
                other = self._records[module][others[0]]
                problems.append(_error("DUPLICATE_DATA", "duplicate data", {
                    "api_name": name, "json_path": f"$.data[{index}].{name}",
                    "duplicate_record": {"id": others[0], "module": {"api_name": module, "id": module_id(module)},
                                         "Owner": dict(other.get("Owner") or {})},
                    "more_records": len(others) > 1}))
        if len(problems) == 1:
            return None, problems[0]
        if problems:
            return None, _error("MULTIPLE_OR_MULTI_ERRORS", "multiple errors occurred", {
                "errors": [{key: p[key] for key in ("code", "details", "message")} for p in problems]})
        return clean, None

    def _convert(self, meta: SimField, value: Any) -> tuple[Any, dict[str, Any] | None]:
        """Check one value against its field; return (stored value, None) or (None, error details)."""
        kind = meta.data_type
        wrong = {"expected_data_type": kind}
        if value is None:
            return None, None
        if kind == "lookup":
            target = meta.lookup_module or ""
            ref = value.get("id") if isinstance(value, dict) else value
            if isinstance(ref, bool) or not isinstance(ref, (str, int)) or str(ref) not in self._records.get(target, {}):
                return None, wrong
            ref = str(ref)
            return {"name": self._display_name(target, self._records[target][ref]), "id": ref}, None
        if kind == "ownerlookup":
            ref = value.get("id") if isinstance(value, dict) else value
            for user in (self.api_user, self.ui_user):
                if str(ref) == user["id"]:
                    return dict(user), None
            return None, wrong
        if kind in ("integer", "bigint"):
            # 12.7 is refused, not truncated; "12" and 12.0 are whole numbers
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                return None, wrong
            if isinstance(value, str) and not INTEGER_RE.fullmatch(value.strip()):
                return None, wrong
            if not isinstance(value, (int, float, str)):
                return None, wrong
            number = int(value if not isinstance(value, str) else value.strip())
            if abs(number) >= (2**31 if kind == "integer" else 2**63):
                return None, wrong
            return number, None
        if kind in ("double", "currency", "percent", "decimal"):
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                return None, wrong
            try:
                real = float(value)
            except ValueError:
                return None, wrong
            if not math.isfinite(real):
                return None, wrong
            return real, None
        if kind == "boolean":
            return (value, None) if isinstance(value, bool) else (None, wrong)
        if kind == "date":
            if not isinstance(value, str) or not DATE_RE.fullmatch(value):
                return None, wrong
            try:
                date.fromisoformat(value)
            except ValueError:
                return None, wrong
            return value, None
        if kind == "datetime":
            try:
                if not isinstance(value, str) or not DATETIME_RE.match(value):
                    raise ValueError(value)
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return None, wrong
            return value, None
        if kind == "multiselectpicklist":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                return None, wrong
            unknown = [v for v in value if v not in meta.pick_list_values]
            if unknown:
                return None, {"supported_values": list(meta.pick_list_values)}
            return list(value), None
        if kind == "picklist":
            if not isinstance(value, str):
                return None, wrong
            if value in ("", "-None-"):
                return None, None
            if value not in meta.pick_list_values:
                return None, {"supported_values": list(meta.pick_list_values)}
            return value, None
        # text, textarea, email, phone, website and other text-like fields
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return None, wrong
        text = value if isinstance(value, str) else str(value)
        if kind == "email" and text and not EMAIL_RE.match(text):
            return None, wrong
        if meta.length is not None and len(text) > meta.length:
            return None, {"maximum_length": meta.length}
        return text, None

    @staticmethod
    def _display_name(module: str, record: dict[str, Any]) -> str:
        if module in ("Contacts", "Leads"):
            return record.get("Full_Name") or ""
        return str(record.get({"Accounts": "Account_Name", "Deals": "Deal_Name"}.get(module, "Name")) or "")

    @staticmethod
    def _full_name(record: dict[str, Any]) -> None:
        if "Last_Name" in record or "First_Name" in record:
            record["Full_Name"] = " ".join(str(p) for p in (record.get("First_Name"), record.get("Last_Name")) if p)

    def _success(self, action: str, record: dict[str, Any], duplicate_field: str | None = None,
                 upsert: bool = False) -> dict[str, Any]:
        result = {"code": "SUCCESS", "details": {
            "Modified_Time": record["Modified_Time"], "Modified_By": _who(record["Modified_By"]),
            "Created_Time": record["Created_Time"], "id": record["id"], "Created_By": _who(record["Created_By"])},
            "message": "record added" if action == "insert" else "record updated", "status": "success"}
        if upsert:
            result = {"code": "SUCCESS", "duplicate_field": duplicate_field, "action": action, **result}
        return result

    def _insert(self, module, fields, index, *, actor, record_id=None, upsert=False):
        clean, problem = self._validate(module, fields, index, creating=True, self_id=None)
        if problem:
            return problem, None
        now = zoho_time(self.wall_clock())
        record_id = record_id or self._new_id()
        record = {"id": record_id, "Owner": dict(actor)}
        record.update(clean)
        record.update({"Created_Time": now, "Modified_Time": now, "Created_By": _who(actor), "Modified_By": _who(actor)})
        self._full_name(record)
        self._records[module][record_id] = record
        self._reindex(module, record_id, None, record)
        self._touched[(module, record_id)] = self.clock()
        return self._success("insert", record, upsert=upsert), _Change(module, record_id, "create", now, sorted(clean))

    def _update(self, module, fields, index, *, actor, upsert_field: str | None = None, upsert=False):
        record_id = fields.get("id")
        if record_id is None or record_id == "":
            return _error("MANDATORY_NOT_FOUND", "required field not found",
                          {"api_name": "id", "json_path": f"$.data[{index}].id"}), None
        record_id = str(record_id)
        record = self._records[module].get(record_id)
        if record is None:
            return _error("INVALID_DATA", "the id given seems to be invalid",
                          {"api_name": "id", "json_path": f"$.data[{index}].id"}), None
        clean, problem = self._validate(module, fields, index, creating=False, self_id=record_id)
        if problem:
            return problem, None
        now = zoho_time(self.wall_clock())
        before = dict(record)
        old_name = self._display_name(module, record)
        record.update(clean)
        record.update({"Modified_Time": now, "Modified_By": _who(actor)})
        self._full_name(record)
        self._reindex(module, record_id, before, record)
        self._touched[(module, record_id)] = self.clock()
        if self._display_name(module, record) != old_name:
            self._refresh_lookup_names(module, record)
        return self._success("update", record, upsert_field, upsert=upsert), _Change(module, record_id, "edit", now,
                                                                                    sorted(clean))

    def _refresh_lookup_names(self, module: str, record: dict[str, Any]) -> None:
        """Keep lookup names pointing at ``record`` current, as Zoho shows them."""
        name = self._display_name(module, record)
        for other_module, known in self._fields.items():
            lookups = [f.api_name for f in known.values() if f.data_type == "lookup" and f.lookup_module == module]
            for other in self._records.get(other_module, {}).values():
                for field_name in lookups:
                    value = other.get(field_name)
                    if isinstance(value, dict) and value.get("id") == record["id"]:
                        value["name"] = name

    def _upsert(self, module, fields, index, *, actor, check_fields):
        names = list(check_fields) if check_fields else (
            self.duplicate_check_allowed(module))
        for name in names:
            value = fields.get(name)
            if value is None or (isinstance(value, str) and not value.strip()) or isinstance(value, (dict, list)):
                continue
            matches = sorted(self._holders(module, name, value))
            if matches:
                return self._update(module, {**fields, "id": matches[0]}, index, actor=actor,
                                    upsert_field=name, upsert=True)
        return self._insert(module, fields, index, actor=actor, upsert=True)

    def delete(self, module: str, record_ids: list[str], *, actor: dict[str, str] | None = None,
               workflow: bool = False) -> list[dict[str, Any]]:
        """Delete records by id to the recycle bin (listed by ``/{module}/deleted``); return Zoho's per-record results."""
        actor = actor or self.api_user
        results = []
        changes = []
        with self._lock:
            self._require_module(module)
            for record_id in record_ids:
                record_id = str(record_id).strip()
                record = self._records[module].pop(record_id, None)
                if record is None:
                    results.append(_error("INVALID_DATA", "the id given seems to be invalid", {"id": record_id}))
                    continue
                self._reindex(module, record_id, record, None)
                self._touched.pop((module, record_id), None)
                now = zoho_time(self.wall_clock())
                self._deleted[module].append({
                    "deleted_by": _who(actor), "id": record_id, "display_name": self._display_name(module, record),
                    "type": "recycle", "created_by": dict(record.get("Created_By") or {}), "deleted_time": now})
                changes.append(_Change(module, record_id, "delete", now))
                results.append({"code": "SUCCESS", "details": {"id": record_id}, "message": "record deleted",
                                "status": "success"})
            if workflow and changes:
                self._fire(changes)
        return results

    def user_delete(self, module: str, record_id: str) -> None:
        """A user deletes a record in the CRM: workflow rules and notifications of deletes fire."""
        with self._lock:
            [result] = self.delete(module, [record_id], actor=self.ui_user, workflow=True)
        if result["status"] != "success":
            raise KeyError(f"{module} {record_id} does not exist")

    def deleted(self, module: str, kind: str = "all") -> list[dict[str, Any]]:
        """The deleted records of ``module``, newest first, as ``GET /{module}/deleted`` lists them."""
        with self._lock:
            self._require_module(module)
            rows = [copy.deepcopy(r) for r in reversed(self._deleted[module])]
        return rows if kind == "all" else [r for r in rows if r["type"] == kind]

    # ---------------------------------------------------------------- get records
    def list_page(self, module: str, fields: list[str], *, page: int = 1, per_page: int = MAX_PER_PAGE,
                  page_token: str | None = None, modified_since: datetime | None = None,
                  ) -> tuple[int, dict[str, Any] | None]:
        """Answer ``GET /{module}?fields=..`` as (HTTP status, body): Zoho's limits on fields and paging included.

        Page numbers reach the first 2,000 records; beyond them a call must bring the
        ``page_token`` of ``info.next_page_token``.  With ``modified_since`` only records
        modified after it are listed, and 304 (no body) answers when there are none.
        """
        if len(fields) > MAX_LIST_FIELDS:
            return 400, _error("LIMIT_EXCEEDED", f"Only {MAX_LIST_FIELDS} fields can be fetched in one call",
                               {"limit": MAX_LIST_FIELDS, "param": "fields"})
        with self._lock:
            self._require_module(module)
            if page_token is not None:
                saved = self._page_tokens.get(page_token)
                if saved is None or saved["module"] != module or saved["expires_at"] < time.time():
                    return 400, _error("INVALID_DATA", "invalid data", {"param": "page_token"})
                start, modified_since = saved["offset"], saved["modified_since"]
            else:
                if page * per_page > MAX_PAGED_RECORDS:
                    return 400, _error("DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                                       f"cannot fetch more than {MAX_PAGED_RECORDS} records with the page parameter: "
                                       "use page_token", {"limit": MAX_PAGED_RECORDS, "param": "page"})
                start = (page - 1) * per_page
            rows = list(self._records[module].values())
            if modified_since is not None:
                rows = [r for r in rows if datetime.fromisoformat(r["Modified_Time"]) > modified_since]
                if not rows:
                    return 304, None
            chunk = rows[start:start + per_page]
            if not chunk:
                return 204, None
            more = len(rows) > start + per_page
            info: dict[str, Any] = {"per_page": per_page, "count": len(chunk), "more_records": more,
                                    "next_page_token": None, "previous_page_token": None, "page_token_expiry": None}
            if page_token is None:
                info["page"] = page
            if more:
                token = secrets.token_hex(24)
                expires = time.time() + PAGE_TOKEN_LIFETIME
                self._page_tokens[token] = {"module": module, "offset": start + per_page,
                                            "modified_since": modified_since, "expires_at": expires}
                info.update(next_page_token=token, page_token_expiry=zoho_time(expires))
            names = [n for n in fields if n != "id"]
            data = [{"id": r["id"], **{n: copy.deepcopy(r.get(n)) for n in names}} for r in chunk]
            return 200, {"data": data, "info": info}

    # ---------------------------------------------------------------- search
    def search(self, module: str, *, criteria: str | None = None, email: str | None = None,
               phone: str | None = None, word: str | None = None) -> list[dict[str, Any]]:
        """Return the records matching one search, hiding those changed within ``search_index_delay``."""
        tree = parse_criteria(criteria) if criteria is not None else None
        with self._lock:
            self._require_module(module)
            horizon = self.clock() - self.search_index_delay
            found = []
            for record_id, record in self._records[module].items():
                if self.search_index_delay and self._touched.get((module, record_id), 0.0) > horizon:
                    continue
                if tree is not None and not _matches(tree, record):
                    continue
                if email is not None and not any(_same(str(record.get(f) or ""), email) for f in EMAIL_FIELDS):
                    continue
                if phone is not None and not (_digits(phone) and any(
                        record.get(f) and _digits(record[f]) == _digits(phone) for f in PHONE_FIELDS)):
                    continue
                if word is not None and not any(
                        isinstance(v, str) and word.casefold() in v.casefold() for v in record.values()):
                    continue
                found.append(copy.deepcopy(record))
            return found

    # ---------------------------------------------------------------- workflow rules
    def add_webhook(self, module: str, url: str, *, events: Iterable[str] = ("create", "edit"), style: str = "form",
                    token: str | None = None, channel_id: str | None = None) -> str:
        """Register a workflow rule calling ``url`` on create/edit/delete of a ``module`` record; return its id."""
        # Styles: "form" (POST url?token=.. with form fields id, module, operation,
        # modified_time), "json" (the same fields as JSON, token in X-Webhook-Token) and
        # "notify" (the Notification API payload, token in the body).
        events = tuple(events)
        if style not in ("form", "json", "notify"):
            raise ValueError("style must be form, json or notify")
        if not events or any(e not in ("create", "edit", "delete") for e in events):
            raise ValueError("events must be create, edit and/or delete")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError("url must be an http(s) URL")
        with self._lock:
            self._require_module(module)
            self._hook_seq += 1
            hook = Webhook(id=str(5725767000000500000 + self._hook_seq), module=module,
                           url=url, events=events, style=style, token=token,
                           channel_id=channel_id or str(1000000000000 + secrets.randbelow(10**12)))
            self._webhooks.append(hook)
            return hook.id

    def remove_webhook(self, webhook_id: str) -> None:
        with self._lock:
            self._webhooks = [h for h in self._webhooks if h.id != webhook_id]

    def webhooks(self) -> list[dict[str, Any]]:
        with self._lock:
            return [h.public() for h in self._webhooks]

    @property
    def deliveries(self) -> list[dict[str, Any]]:
        """Return every webhook delivery so far: url, style, module, ids, operation, status, error, time, ok."""
        with self._lock:
            return copy.deepcopy(self._deliveries)

    @property
    def webhook_failures(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._failures)

    def webhook_failure_items(self) -> list[dict[str, Any]]:
        """The failed deliveries, newest first, one per record, as ``GET /crm/v8/settings/automation/webhook_failures``."""
        items = []
        with self._lock:
            for number, failure in enumerate(self._failures):
                for record_id in failure["ids"]:
                    items.append({
                        "webhook": {"name": failure["webhook_name"], "id": failure["webhook_id"]},
                        "entity_details": {"module": failure["module"], "name": failure["names"].get(record_id, ""),
                                           "id": record_id},
                        "failure_time": failure["time"],
                        "failure_reason": failure["error"] or f"HTTP {failure['status']}",
                        "id": str(5725767000000600000 + number * 100 + len(items)),
                        "workflow_rule": {"name": f"{failure['webhook_name']} rule", "id": failure["webhook_id"]},
                    })
        return list(reversed(items))

    def _fire(self, changes: list[_Change]) -> None:
        """Queue the deliveries of every rule matching ``changes``; a background thread sends them."""
        names = {}
        for change in changes:
            record = self._records[change.module].get(change.record_id)
            gone = next((d for d in self._deleted[change.module] if d["id"] == change.record_id), None)
            names[change.record_id] = (self._display_name(change.module, record) if record is not None
                                       else gone["display_name"] if gone else "")
        jobs = []
        for hook in self._webhooks:
            mine = [c for c in changes if c.module == hook.module and c.operation in hook.events]
            if not mine:
                continue
            if hook.style == "notify":
                for operation in ("create", "edit", "delete"):
                    group = [c for c in mine if c.operation == operation]
                    if group:  # one notification may carry many ids
                        jobs.append(self._notify_job(hook, group))
            else:
                jobs.extend(self._plain_job(hook, c) for c in mine)
        if not jobs:
            return
        for job in jobs:
            job["names"] = {i: names.get(i, "") for i in job["ids"]}
        self._pending += len(jobs)
        for job in jobs:
            self._outbox.put(job)
        if self._dispatcher is None:
            self._dispatcher = threading.Thread(target=self._deliver, name="zoho-sim-webhooks", daemon=True)
            self._dispatcher.start()

    def _plain_job(self, hook: Webhook, change: _Change) -> dict[str, Any]:
        fields = {"id": change.record_id, "module": change.module, "operation": change.operation,
                  "modified_time": change.modified_time}
        job = {"hook": hook, "ids": [change.record_id], "operation": change.operation, "method": "POST"}
        if hook.style == "form":
            url = hook.url
            if hook.token is not None:
                url += ("&" if "?" in url else "?") + urlencode({"token": hook.token})
            job.update(url=url, kwargs={"data": fields})
        else:
            headers = {"X-Webhook-Token": hook.token} if hook.token is not None else {}
            job.update(url=hook.url, kwargs={"json": fields, "headers": headers})
        return job

    def _notify_job(self, hook: Webhook, group: list[_Change]) -> dict[str, Any]:
        operation = {"create": "insert", "edit": "update", "delete": "delete"}[group[0].operation]
        ids = [c.record_id for c in group]
        payload = {
            "server_time": int(time.time() * 1000), "query_params": {}, "module": hook.module,
            # Zoho puts a v2 URI here whatever version the channel was made with.
            "resource_uri": f"{self.base_url}/crm/v2/{hook.module}", "ids": ids,
            "affected_fields": [{c.record_id: c.fields} for c in group] if operation == "update" else [],
            "operation": operation, "channel_id": hook.channel_id, "token": hook.token,
        }
        return {"hook": hook, "ids": ids, "operation": group[0].operation, "method": "POST", "url": hook.url,
                "kwargs": {"json": payload}}

    def _deliver(self) -> None:
        """Send queued deliveries one after another; end after a quiet spell."""
        session = requests.Session()
        while True:
            try:
                job = self._outbox.get(timeout=2.0)
            except queue.Empty:
                with self._lock:  # _fire enqueues under this lock: nothing can slip in unseen
                    if self._outbox.empty():
                        self._dispatcher = None
                        return
                continue
            status, error = None, None
            try:
                response = session.request(job["method"], job["url"], timeout=self.webhook_timeout, **job["kwargs"])
                status = response.status_code
            except requests.RequestException as exc:
                error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # noqa: BLE001 - a delivery must never kill the dispatcher
                error = f"{type(exc).__name__}: {exc}"
            hook: Webhook = job["hook"]
            entry = {"webhook_id": hook.id, "webhook_name": hook.name, "names": job["names"],
                     "url": job["url"], "style": hook.style, "module": hook.module,
                     "ids": job["ids"], "operation": job["operation"], "status": status, "error": error,
                     "time": zoho_time(), "ok": status is not None and 200 <= status < 300}
            with self._lock:
                self._deliveries.append(entry)
                if not entry["ok"]:
                    self._failures.append(entry)
                self._pending -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every queued webhook delivery is done; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
            return True

    # ---------------------------------------------------------------- overview
    def snapshot(self) -> dict[str, Any]:
        """Describe the state for ``GET /_sim/state``."""
        with self._lock:
            return {
                "modules": {m: len(r) for m, r in self._records.items()},
                "credits_used": self._credits, "api_calls": self._calls,
                "in_flight": self._in_flight, "peak_in_flight": self._peak_in_flight,
                "refused_calls": self._refused_calls,
                "tokens_minted": sum(self._minted_total.values()),
                "live_access_tokens": sum(1 for i in self._access_tokens.values() if i["expires_at"] > time.time()),
                "unique_fields": copy.deepcopy(self.unique_fields),
                "mandatory_fields": copy.deepcopy(self.mandatory_fields),
                "webhooks": [h.public() for h in self._webhooks],
                "deliveries": copy.deepcopy(self._deliveries[-100:]),
                "pending_deliveries": self._pending,
                "faults": [vars(f).copy() for f in self._faults],
                "settings": {k: getattr(self, k) for k in SETTABLE},
            }


SETTABLE = ("token_lifetime", "mint_limit", "mint_window", "missing_record_style", "auth_error_code",
            "search_index_delay", "max_concurrent", "api_domain", "webhook_timeout")


def _who(user: dict[str, str]) -> dict[str, str]:
    return {"name": user["name"], "id": user["id"], "email": user.get("email", "")}
