"""Connecting Zoho and Ameise by a person's consent (OAuth authorization code, RFC 6749 4.1) from the dashboard.

:func:`start_connect` makes a fresh ``state`` (and, where the server supports it,
a PKCE S256 pair, RFC 7636) and the consent URL; the caller keeps the
:class:`PendingConnect` for this browser only and hands it to
:func:`finish_connect` exactly once: the callback's ``state`` must equal the
pending one, within :data:`MAX_PENDING_AGE`, else nothing is exchanged.  The
outcome of every attempt goes to the audit log with who and when.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime

from syncbridge.config import Settings
from syncbridge.errors import SyncError
from syncbridge.ports import AuditEntry, Connector, OAuthToken, OperatorStore, TokenStore

PROVIDERS = ("zoho", "ameise")
MAX_PENDING_AGE = 600.0          # seconds from the redirect to the consent page until the callback
MAX_ERROR = 300


class ConnectRefused(ValueError):
    """A callback that does not belong to a connect started here (state missing, wrong, used or too old)."""


@dataclass(frozen=True)
class PendingConnect:
    """What one browser's connect needs at its callback; kept in that browser's signed session only."""

    provider: str
    state: str
    code_verifier: str            # empty when the server takes no PKCE
    started_at: float             # POSIX seconds

    def to_dict(self) -> dict[str, str | float]:
        return {"provider": self.provider, "state": self.state, "code_verifier": self.code_verifier,
                "started_at": self.started_at}

    @classmethod
    def from_dict(cls, raw: object) -> PendingConnect | None:
        if not isinstance(raw, dict):
            return None
        try:
            return cls(str(raw["provider"]), str(raw["state"]), str(raw["code_verifier"]), float(raw["started_at"]))
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class ConnectOutcome:
    provider: str
    connected: bool
    detail: str = ""                      # why not (the server's error, never a token)
    token: OAuthToken | None = None


@dataclass(frozen=True)
class ConnectionDetails:
    """A connection as the Connections page shows it: no token, only what it grants and until when."""

    provider: str
    status: str                           # active, reconnect_needed, not_connected
    detail: str
    scopes: tuple[str, ...]
    expires_at: datetime | None
    account: str                          # Ameise: the employee id; Zoho: the API domain
    pkce: bool


@dataclass
class ConnectionSources:
    """What the Connections page uses; ``syncbridge.bootstrap`` builds it."""

    connectors: Mapping[str, Connector]
    tokens: TokenStore
    operators: OperatorStore
    settings: Settings
    clock: Callable[[], float] = time.time
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge): 64 random characters of the unreserved alphabet (RFC 7636 4.1, 4.2)."""
    verifier = secrets.token_urlsafe(48)  # 64 characters
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def start_connect(connectors: Mapping[str, Connector], operators: OperatorStore, provider: str, *, by: str,
                  clock: Callable[[], float],
                  now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> tuple[str, PendingConnect]:
    """The consent URL to send the browser to, and what its callback will need; audited."""
    connector = _connector(connectors, provider)
    state = secrets.token_urlsafe(32)
    verifier, challenge = pkce_pair() if connector.supports_pkce else ("", "")
    url = connector.authorization_url(state, challenge)
    operators.audit(AuditEntry(actor=by, action="connection.started", target=provider,
                               details={"pkce": bool(verifier)}, at=now()))
    return url, PendingConnect(provider, state, verifier, clock())


def finish_connect(connectors: Mapping[str, Connector], operators: OperatorStore, pending: PendingConnect | None,
                   provider: str, *, state: str, code: str, error: str, by: str,
                   clock: Callable[[], float], now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> ConnectOutcome:
    """Check the callback against the pending connect, trade the code, and audit the outcome.

    Raises :class:`ConnectRefused` (and exchanges nothing) when the callback is not
    the one this browser started; the caller has already dropped ``pending``.
    """
    connector = _connector(connectors, provider)
    if pending is None or pending.provider != provider:
        raise ConnectRefused("no connect of this system was started in this browser, or it was finished already")
    if not state or not hmac.compare_digest(state.encode(), pending.state.encode()):
        raise ConnectRefused("the state of the callback does not match the connect started in this browser")
    if clock() - pending.started_at > MAX_PENDING_AGE:
        raise ConnectRefused("the connect was started too long ago; start it again")
    if error or not code:
        outcome = ConnectOutcome(provider, False, (error or "no authorization code")[:MAX_ERROR])
    else:
        try:
            token = connector.exchange_code(code, pending.code_verifier)
        except SyncError as exc:
            outcome = ConnectOutcome(provider, False, exc.message[:MAX_ERROR])
        else:
            outcome = ConnectOutcome(provider, True, token=token)
    details: dict[str, object] = {"pkce": bool(pending.code_verifier)}
    if outcome.token is not None:
        details["scope"] = str(outcome.token.extra.get("scope", ""))
    else:
        details["error"] = outcome.detail
    operators.audit(AuditEntry(actor=by, action="connection.connected" if outcome.connected else "connection.failed",
                               target=provider, details=details, at=now()))
    return outcome


def connection_details(tokens: TokenStore, connectors: Mapping[str, Connector]) -> tuple[ConnectionDetails, ...]:
    """Each system's connection: status, scopes, expiry, account; never a token."""
    found = []
    for provider in PROVIDERS:
        status, detail = tokens.status(provider)
        token = tokens.load(provider)
        scopes: tuple[str, ...] = ()
        expires = None
        account = ""
        if token is not None:
            scopes = tuple(str(token.extra.get("scope", "")).replace(",", " ").split())
            expires = datetime.fromtimestamp(token.expires_at, UTC) if token.expires_at else None
            account = str(token.extra.get("employee_id") or token.extra.get("api_domain") or "")
        connector = connectors.get(provider)
        found.append(ConnectionDetails(provider, status, detail, scopes, expires, account,
                                       bool(connector is not None and connector.supports_pkce)))
    return tuple(found)


def _connector(connectors: Mapping[str, Connector], provider: str) -> Connector:
    connector = connectors.get(provider)
    if connector is None:
        raise ValueError(f"unknown system {provider!r}; known: {', '.join(sorted(connectors))}")
    return connector


# A setting whose name says it holds a credential is never shown, even where it is not required in production.
_CREDENTIAL_WORDS = ("SECRET", "TOKEN", "PASSWORD", "KEY", "DSN")


@dataclass(frozen=True)
class ShownSetting:
    env: str
    value: str                            # "" for a secret: only whether it is set is shown
    secret: bool
    is_set: bool
    help: str


def settings_shown(settings: Settings, prefixes: tuple[str, ...]) -> list[ShownSetting]:
    """The settings whose variable starts with one of ``prefixes``, secrets replaced by whether they are set."""
    shown = []
    for f in fields(settings):
        meta = f.metadata["setting"]
        if not meta.env.startswith(prefixes):
            continue
        value = getattr(settings, f.name)
        secret = meta.secret or any(word in meta.env.rsplit("_", 1)[-1] for word in _CREDENTIAL_WORDS)
        text = "" if secret else (", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else str(value))
        shown.append(ShownSetting(meta.env, text, secret, bool(value), meta.help))
    return shown
