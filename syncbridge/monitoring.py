"""Sentry for the receiver and the workers; personal data and secrets never leave the process.

Without a DSN nothing is initialised, nothing is sent and every function here is a
no-op.  With one, :func:`scrub` runs on every event (``before_send``) and every
breadcrumb (``before_breadcrumb``) before anything is queued for sending:

* values under a denied key (names, e-mails, birth dates, addresses, phone
  numbers, tokens and secrets; case-insensitive, at any depth) become ``[Filtered]``;
* inside every string, e-mail addresses become ``[email]``, ``Bearer`` /
  ``Zoho-oauthtoken`` / ``Basic`` credentials and ``key=value`` or ``"key": value``
  pairs with a denied key are filtered (query strings, URLs, error messages).

The consumers report each failed message once, with :func:`report_failed_message`;
:func:`breadcrumb` records what led up to it.  Sentry's API:
https://docs.sentry.io/platforms/python/configuration/filtering/
"""
from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from functools import lru_cache, partial
from importlib import metadata
from typing import TYPE_CHECKING, Any

from syncbridge.config import Settings

if TYPE_CHECKING:
    from types import ModuleType

log = logging.getLogger(__name__)

FILTERED = "[Filtered]"
EMAIL = "[email]"

# Denied keys, compared in lower case with "-" read as "_" (X-Webhook-Token is x_webhook_token).
_DENIED_KEYS = frozenset({
    "name", "vorname", "nachname", "firma", "firmenname",
    "plz", "zip", "zip_code", "postal_code", "postleitzahl", "ort", "wohnort", "city", "stadt", "hausnummer",
    # "code" is both the OAuth authorization code and Zoho's zip field of an address (Billing_Code).
    "code", "auth", "api_key", "apikey", "credentials", "private_key", "iban", "ip_address",
})
_DENIED_PARTS = (
    "mail", "birth", "geburt", "street", "strasse", "straße", "address", "adresse", "anschrift",
    "phone", "telefon", "mobil", "username", "benutzername",
    "token", "secret", "passw", "authorization", "cookie",
)
# Zoho's address blocks (Mailing_Street, Billing_Code, Shipping_City, Other_Zip ...) and
# name fields (First_Name, Account_Name, Contact_Name, Deal_Name ...).
_DENIED_PREFIXES = ("mailing_", "billing_", "shipping_", "other_")
_DENIED_SUFFIXES = ("_name",)

_CREDENTIALS = (
    (re.compile(r"(?i)\b(Bearer|Zoho-oauthtoken)(\s+)[^\s,;\"'&]+"), rf"\1\2{FILTERED}"),
    (re.compile(r"\b(Basic)(\s+)[A-Za-z0-9+/]{8,}={0,2}"), rf"\1\2{FILTERED}"),
)
# The domain may be cut short: Sentry truncates long values before before_send sees them.
_EMAIL = re.compile(r"[\w.%+-]+(?:@|%40)[\w-]+(?:\.[\w-]+)*")
# A value in braces or brackets is a structure: its own pairs are matched one by one.
_PAIR = re.compile(r"""(?P<key>[\w.-]+)(?P<head>["']?\s*[:=]\s*)(?P<value>"[^"]*"|'[^']*'|[^\s&?,;(){}\[\]"']+)""")

# Parts of an event that describe the SDK and the process, not data: kept as they are
# ("runtime" has a "name", syncbridge@1.0 looks like an address, _meta only annotates removals).
_SDK_FIELDS = frozenset({"sdk", "modules", "_meta", "release", "environment", "server_name"})
_SDK_CONTEXTS = frozenset({"runtime", "trace", "os", "device", "app", "culture", "cloud_resource"})

# Their ERROR lines are failed messages, each reported once by report_failed_message with
# its tags; sent as events of their own they would count every failure twice.
_MESSAGE_LOGGERS = frozenset({"consumers.base", "consumers.crm_to_ameise", "consumers.ameise_to_crm"})


# ---------------------------------------------------------------- set-up
def init_sentry(settings: Settings, component: str) -> bool:
    """Start Sentry for one process ("web", "worker:crm-to-ameise", ...) when a DSN is set."""
    if not settings.sentry_dsn:
        return False
    # Imported only here: the SDK takes about a tenth of a second to import, in every process the service
    # starts, and without a DSN nothing of it is used (see _active).
    import sentry_sdk
    from sentry_sdk.utils import get_default_release

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        release=settings.release or get_default_release() or f"syncbridge@{metadata.version('syncbridge')}",
        environment=settings.env,
        # No personal data by default: send_default_pii and data_collection are left unset, which the SDK
        # takes as no cookies, IP addresses or user; send_default_pii itself is deprecated in newer SDKs.
        # Frame locals hold whole CRM records, DailyUp rows, HTTP bodies and OAuth tokens under
        # names such as record, row or body that no key denylist can recognise: never collect them.
        include_local_variables=False,
        # Zoho Flow / Forms bodies carry whatever fields a form has, under names no denylist can
        # know: request bodies are never sent (headers and query string are, scrubbed).
        max_request_body_size="never",
        before_send=partial(_before_send, component=component),
        before_breadcrumb=_before_breadcrumb,
    )
    log.info("Sentry reporting on for %s (environment %s)", component, settings.env)
    return True


# ---------------------------------------------------------------- reporting
def report_failed_message(exc: BaseException | None, *, queue: str, routing_key: str, record_id: str | None,
                          attempt: int, kind: str, reason: str, message_id: str | None = None) -> None:
    """Send one event for a message given up on (dead-lettered, or out of retries); no-op without Sentry."""
    sentry_sdk = _active()
    if sentry_sdk is None:
        return
    from sentry_sdk.utils import event_from_exception

    client = sentry_sdk.get_client()
    with sentry_sdk.new_scope() as scope:
        for name, value in (("queue", queue), ("routing_key", routing_key), ("record_id", record_id),
                            ("attempt", attempt), ("error_kind", kind)):
            if value is not None:
                scope.set_tag(name, str(value))
        scope.set_context("failed_message", {
            "queue": queue, "routing_key": routing_key, "record_id": record_id, "attempt": attempt,
            "error_kind": kind, "reason": reason, "message_id": message_id,
        })
        scope.fingerprint = ["failed-message", queue, kind, *_cause(exc, reason)]
        if exc is None:
            sentry_sdk.capture_event({"message": f"{kind} message on {queue}: {reason}"[:500], "level": "error"})
        else:
            event, _ = event_from_exception(exc, client_options=client.options,
                                            mechanism={"type": "syncbridge", "handled": True})
            # Without exc_info in the hint: Sentry's de-duplication would drop this tagged event
            # when a log line already sent the same exception.
            sentry_sdk.capture_event(event)


_reconnects_reported: set[str] = set()


def report_reconnect_needed(system: str, detail: str) -> None:
    """Tell Sentry, once until the connection works again, that a person must reconnect ``system``."""
    sentry_sdk = _active()
    if system in _reconnects_reported or sentry_sdk is None:
        return
    _reconnects_reported.add(system)
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("connection", system)
        scope.fingerprint = ["reconnect-needed", system]
        sentry_sdk.capture_event({"message": f"{system} needs a reconnect: {detail}"[:500], "level": "error"})


def connection_works(system: str) -> None:
    """The connection of ``system`` works (again): a later loss is reported anew."""
    _reconnects_reported.discard(system)


def breadcrumb(category: str, message: str, **data: Any) -> None:
    """Record a step ("message received", "zoho call") for the next event; no-op without Sentry."""
    sentry_sdk = _active()
    if sentry_sdk is not None:
        sentry_sdk.add_breadcrumb(category=category, message=message, data=data, level="info")


@contextmanager
def message_scope() -> Iterator[None]:
    """Keep the breadcrumbs of one message (or batch) out of the events of the messages after it."""
    sentry_sdk = sys.modules.get("sentry_sdk")
    if sentry_sdk is None:      # never imported, so never started: there are no breadcrumbs to keep apart
        yield
        return
    with sentry_sdk.isolation_scope():
        yield


def _active() -> ModuleType | None:
    """The Sentry SDK when a client is started in this process, else None.

    An SDK that was never imported has no client: a process without a DSN never imports it.
    """
    sentry_sdk = sys.modules.get("sentry_sdk")
    if sentry_sdk is None or not sentry_sdk.get_client().is_active():
        return None
    return sentry_sdk


def _cause(exc: BaseException | None, reason: str) -> list[str]:
    """What makes two failures the same for grouping: never the record, the message or the attempt."""
    if exc is None:
        # Ids, numbers and quoted values differ from record to record; the sentence does not.
        text = re.sub(r"\d+", "0", _scrub_text(reason))
        return [re.sub(r"\"[^\"]*\"|'[^']*'", "''", text)[:200]]
    code, field = getattr(exc, "code", None), getattr(exc, "field", None)
    if code or field:
        # A refusal by Zoho or Ameise: its code and field name the cause.
        return [type(exc).__qualname__, str(code or ""), str(field or "")]
    return ["{{ default }}"]  # a bug of ours: Sentry's grouping by stack trace


# ---------------------------------------------------------------- scrubbing
def scrub(data: dict, hint: dict | None = None) -> dict:  # noqa: ARG001 - the hooks' signature
    """Remove personal data and secrets from a Sentry event or breadcrumb."""
    scrubbed: dict = {}
    for key, value in data.items():
        if key in _SDK_FIELDS:
            scrubbed[key] = value
        elif key == "contexts" and isinstance(value, dict):
            scrubbed[key] = {name: context if name in _SDK_CONTEXTS else _scrub(context)
                             for name, context in value.items()}
        else:
            scrubbed[key] = _scrub(value)
    return scrubbed


def _before_send(event: dict, hint: dict, *, component: str) -> dict | None:
    record = hint.get("log_record")
    if record is not None and record.name in _MESSAGE_LOGGERS:
        return None
    event = scrub(event, hint)
    event.setdefault("tags", {})["component"] = component
    return event


def _before_breadcrumb(crumb: dict, hint: dict) -> dict | None:
    try:
        return scrub(crumb, hint)
    except Exception:  # noqa: BLE001 - the SDK would keep the unscrubbed breadcrumb: drop it instead
        return None


@lru_cache(maxsize=1024)
def denied(key: str) -> bool:
    """Whether the value under ``key`` is personal data or a secret."""
    key = key.strip().lower().replace("-", "_").strip("_")
    return (key in _DENIED_KEYS or any(part in key for part in _DENIED_PARTS)
            or key.startswith(_DENIED_PREFIXES) or key.endswith(_DENIED_SUFFIXES))


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, dict):
        return {key: FILTERED if isinstance(key, str) and denied(key) else _scrub(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_scrub(item) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return _scrub_text(bytes(value).decode("utf-8", "replace"))
    if value is None or isinstance(value, (bool, int, float, datetime, date)):
        return value
    # Sentry would send the object's repr: scrub that instead.
    return _scrub_text(repr(value))


def _scrub_text(text: str) -> str:
    for pattern, replacement in _CREDENTIALS:
        text = pattern.sub(replacement, text)
    text = _PAIR.sub(_filter_pair, text)
    return _EMAIL.sub(EMAIL, text)


def _filter_pair(match: re.Match) -> str:
    if not denied(match["key"]):
        return match[0]
    return f"{match['key']}{match['head']}{FILTERED}"
