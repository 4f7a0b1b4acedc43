"""Settings from the environment, in one place, with development defaults.

Every setting is read from a ``SYNCBRIDGE_*`` variable (``SENTRY_DSN`` keeps its
usual name) and typed once, at load, by a marshmallow field; every malformed
value is reported at once, one line each, and the rest of the code only sees
typed values.  In production mode (``SYNCBRIDGE_ENV=production``) a missing secret
stops the process at start-up with a clear message instead of running with a
development default.
"""
from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from dataclasses import field as dataclass_field
from datetime import time
from typing import Any
from urllib.parse import quote, urlsplit

from cryptography.fernet import Fernet
from marshmallow import ValidationError, validate
from marshmallow import fields as mf

PREFIX = "SYNCBRIDGE_"

# Entity kinds a CRM module can feed.  "person" and "company" are both Ameise
# customers (Kunden) with a different Personentyp; "contract" is a Vertrag.
ENTITY_KINDS = ("person", "company", "contract")
# The worker processes, by the name `syncbridge worker NAME` and the Procfile use.
WORKERS = ("crm-to-ameise", "ameise-to-crm", "dailyup", "dead-letters", "sweep")
DAILYUP_ENCODINGS = ("auto", "utf-8", "utf-8-sig", "cp1252", "iso-8859-1", "latin-1")
DELETE_MODES = ("mark", "delete", "ignore")


# The default of SYNCBRIDGE_TOKEN_KEY: a public key for development only (production refuses it).
DEV_TOKEN_KEY = base64.urlsafe_b64encode(b"syncbridge-dev-token-key-32bytes").decode("ascii")


class TokenKeyError(ValueError):
    """SYNCBRIDGE_TOKEN_KEY is not a list of Fernet keys; the message says which one and why, never the key."""


def parse_token_keys(raw: str) -> list[bytes]:
    """The Fernet keys of a comma-separated list; TokenKeyError naming the position of a bad one."""
    keys = [part.strip() for part in raw.split(",") if part.strip()]
    if not keys:
        raise TokenKeyError("SYNCBRIDGE_TOKEN_KEY is empty: give at least one Fernet key")
    parsed = []
    for position, key in enumerate(keys, 1):
        try:
            encoded = key.encode("ascii")
            Fernet(encoded)
            if base64.urlsafe_b64encode(base64.urlsafe_b64decode(encoded)) != encoded:
                raise ValueError("trailing characters")   # the decoder ignores what follows the padding
        except (ValueError, binascii.Error, UnicodeEncodeError):
            raise TokenKeyError(
                f"SYNCBRIDGE_TOKEN_KEY: key {position} of {len(keys)} is not a Fernet key (32 bytes, url-safe "
                "base64; make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')") from None
        parsed.append(key.encode("ascii"))
    return parsed


class ConfigError(Exception):
    """One or more settings are missing or malformed (every problem on a line of its own)."""


# ---------------------------------------------------------------- coercers
# Each setting is read as text and turned into its type once, at start, by a
# marshmallow field; what a field refuses is reported with the variable's name.
class _Pairs(mf.Field):
    """``a=1,b=2`` -> ``{"a": "1", "b": "2"}`` (whitespace around items ignored)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, str]:
        result: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in str(value).split(","))):
            key, sep, text = item.partition("=")
            if not sep or not key.strip() or not text.strip():
                raise ValidationError(f"expected NAME=VALUE pairs separated by commas, got {item!r}")
            result[key.strip()] = text.strip()
        return result


class _Modules(_Pairs):
    """CRM module -> entity kind pairs; every kind one of :data:`ENTITY_KINDS`."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, str]:
        pairs = super()._deserialize(value, attr, data, **kwargs)
        for module, kind in pairs.items():
            if kind not in ENTITY_KINDS:
                raise ValidationError(f"{module}={kind}: kind must be one of {', '.join(ENTITY_KINDS)}")
        return pairs


class _Delays(mf.Field):
    """``10,60,600`` -> ``(10, 60, 600)``: one or more rising positive whole seconds."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[int, ...]:
        try:
            delays = tuple(int(part) for part in str(value).split(",") if part.strip())
        except ValueError:
            raise ValidationError("must be whole seconds separated by commas") from None
        if not delays or any(d <= 0 for d in delays) or list(delays) != sorted(set(delays)):
            raise ValidationError("must be one or more rising positive numbers of seconds")
        return delays


class _TimeOfDay(mf.Field):
    """``06:00`` -> ``time(6, 0)``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> time:
        try:
            hours, minutes = str(value).split(":")
            return time(int(hours), int(minutes))
        except ValueError:
            raise ValidationError("must be a time HH:MM") from None


def _text() -> mf.Field:
    return mf.String()


def _positive_int() -> mf.Field:
    return mf.Integer(strict=False, validate=validate.Range(min=1, error="must be positive"),
                      error_messages={"invalid": "must be a whole number"})


def _count() -> mf.Field:
    return mf.Integer(strict=False, validate=validate.Range(min=0, error="must not be negative"),
                      error_messages={"invalid": "must be a whole number"})


def _seconds(*, zero: bool = True) -> mf.Field:
    return mf.Float(allow_nan=False, validate=validate.Range(min=0, min_inclusive=zero,
                                                             error="must not be negative" if zero else
                                                             "must be more than 0 (0 would mean waiting forever)"),
                    error_messages={"invalid": "must be a number"})


def _flag() -> mf.Field:
    return mf.Boolean(truthy={"true", "1", "yes"}, falsy={"false", "0", "no"},
                      error_messages={"invalid": "must be true or false"})


def _check(holds: Callable[[str], bool], error: str) -> Callable[[str], None]:
    """A validator of ``holds``: marshmallow (since 4) takes only a raised ValidationError as a failure."""
    def validator(value: str) -> None:
        if not holds(value):
            raise ValidationError(error)
    return validator


def _encoding() -> mf.Field:
    return mf.String(validate=_check(lambda value: value.lower() in DAILYUP_ENCODINGS,
                                     f"must be one of {', '.join(DAILYUP_ENCODINGS)}"))


def _delimiter() -> mf.Field:
    return mf.String(validate=validate.Length(equal=1, error="must be one character"))


def _batch_size() -> mf.Field:
    return mf.Integer(strict=False, validate=validate.Range(min=1, max=100, error="must be between 1 and 100 (Zoho's limit per call)"),
                      error_messages={"invalid": "must be a whole number"})


def _share() -> mf.Field:
    return mf.Float(allow_nan=False, validate=validate.Range(min=0, max=1, error="must be between 0 and 1"),
                    error_messages={"invalid": "must be a number"})


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        parts.port      # noqa: B018 - raises ValueError on a port that is not one
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in value)


def _http_url() -> mf.Field:
    # Not marshmallow's Url field: its pattern takes about 0.1 s to compile, and the default is checked on
    # import, in every process the service starts.
    return mf.String(validate=_check(_is_http_url, "must be an http(s) URL"))


def _one_of(choices: tuple[str, ...]) -> mf.Field:
    return mf.String(validate=validate.OneOf(choices, error=f"must be one of {', '.join(choices)}"))


@dataclass(frozen=True)
class Setting:
    """Metadata of one setting: its variable, default (as text) and whether it is a secret."""

    env: str
    default: str
    help: str
    secret: bool = False
    parser: mf.Field = dataclass_field(default_factory=_text, compare=False, repr=False)

    def parse(self, raw: str) -> Any:
        """The typed value of ``raw``; ValidationError when it is not one."""
        return self.parser.deserialize(raw)


def _s(name: str, default: str, help: str, *, secret: bool = False, parse: mf.Field | None = None) -> Any:
    meta = Setting(PREFIX + name if not name.startswith("SENTRY") else name, default, help, secret, parse or _text())
    typed = meta.parse(default)
    if isinstance(typed, (dict, list)):
        return dataclass_field(default_factory=lambda: type(typed)(typed), metadata={"setting": meta})
    return dataclass_field(default=typed, metadata={"setting": meta})


@dataclass(frozen=True)
class Settings:
    """All settings of the service.  Build with :meth:`from_env`."""

    env: str = _s("ENV", "development", "development or production; production refuses to start without its secrets", parse=_one_of(("development", "production")))
    log_level: str = _s("LOG_LEVEL", "INFO", "Python log level")
    database_url: str = _s("DATABASE_URL", "sqlite:///syncbridge.db", "SQLAlchemy URL of the service's own database (PostgreSQL in production)")
    broker_url: str = _s("BROKER_URL", "", "RabbitMQ URL (amqp://user:pass@host:5672/vhost); empty = in-process broker (memory://), single process only")
    namespace: str = _s("NAMESPACE", "syncbridge", "prefix of every exchange and queue name")
    prefetch_count: int = _s("PREFETCH_COUNT", "10", "messages a consumer takes from RabbitMQ before acknowledging", parse=_positive_int())
    delivery_limit: int = _s("DELIVERY_LIMIT", "20", "quorum-queue delivery limit: a message redelivered more often is dead-lettered by RabbitMQ", parse=_positive_int())
    record_lease: float = _s("RECORD_LEASE", "120", "seconds a worker may hold one CRM record while it syncs it; the lease of a worker that died runs out after this", parse=_seconds())
    coalesce_margin: float = _s("COALESCE_MARGIN", "1", "seconds: an event received this much before a finished sync of its record began is covered by it and not fetched again (clock difference between receiver and worker hosts)", parse=_seconds())
    retry_delays: tuple[int, ...] = _s("RETRY_DELAYS", "10,60,600,3600", "seconds before each retry of a message that met an unavailable system; after the last, it is dead-lettered", parse=_Delays())
    publish_timeout: float = _s("PUBLISH_TIMEOUT", "5", "seconds to wait for the broker's publisher confirm before answering 503", parse=_seconds(zero=False))
    public_url: str = _s("PUBLIC_URL", "http://127.0.0.1:8000", "URL under which the receiver is reachable (OAuth redirects, printed hints)")

    # webhook receiver
    zoho_webhook_token: str = _s("ZOHO_WEBHOOK_TOKEN", "dev-zoho-webhook-token", "shared secret of Zoho workflow-rule webhooks (X-Webhook-Token header or token parameter)", secret=True)
    zoho_notify_token: str = _s("ZOHO_NOTIFY_TOKEN", "dev-zoho-notify-token", "token of the Zoho Notification API channel (sent in the body)", secret=True)
    forms_tokens: dict[str, str] = _s("FORMS_TOKENS", "zoho-forms=dev-forms-token,zoho-flow=dev-flow-token", "per-source secrets of /webhooks/forms/<source>, as source=token pairs", secret=True, parse=_Pairs())
    forms_default_module: str = _s("FORMS_DEFAULT_MODULE", "Contacts", "CRM module of a Forms/Flow event that names none")
    max_body_bytes: int = _s("MAX_BODY_BYTES", "65536", "largest webhook body accepted; larger answers 413", parse=_positive_int())
    body_read_timeout: float = _s("BODY_READ_TIMEOUT", "10", "seconds a client may take to send a request body once its headers are in (an authenticated DailyUp upload: seconds between two reads); slower answers 408", parse=_seconds(zero=False))

    # Zoho CRM
    zoho_accounts_url: str = _s("ZOHO_ACCOUNTS_URL", "https://accounts.zoho.eu", "Zoho accounts server of the data centre (OAuth token endpoint): accounts.zoho.com, .eu, .in, .com.au, .jp, .com.cn, .sa, or accounts.zohocloud.ca (Canada)")
    zoho_api_url: str = _s("ZOHO_API_URL", "", "Zoho API domain; empty = the api_domain returned with the access token")
    zoho_client_id: str = _s("ZOHO_CLIENT_ID", "dev-zoho-client", "OAuth client id (Zoho API console)", secret=True)
    zoho_client_secret: str = _s("ZOHO_CLIENT_SECRET", "dev-zoho-secret", "OAuth client secret", secret=True)
    zoho_refresh_token: str = _s("ZOHO_REFRESH_TOKEN", "dev-zoho-refresh-token", "OAuth refresh token (self-client grant with access_type=offline)", secret=True)
    zoho_modules: dict[str, str] = _s("ZOHO_MODULES", "Contacts=person,Accounts=company,Deals=contract", "CRM modules that are synced, each with its entity kind (person, company, contract)", parse=_Modules())
    zoho_field_kundennummer: str = _s("ZOHO_FIELD_KUNDENNUMMER", "Kundennummer", "API name of the CRM field holding the Ameise Kundennummer")
    zoho_field_vertragsnummer: str = _s("ZOHO_FIELD_VERTRAGSNUMMER", "Vertragsnummer", "API name of the CRM field holding the Ameise Vertragsnummer")

    # Ameise (blau direkt)
    ameise_auth_url: str = _s("AMEISE_AUTH_URL", "https://auth.dionera.com", "Ameise OAuth2 server (authorize, token, userinfo)")
    ameise_api_url: str = _s("AMEISE_API_URL", "https://mitarbeiterwebservice.maklerinfo.biz/service/bd/employee/1.0/rest", "base of the employee web service; the employee id is appended")
    ameise_client_id: str = _s("AMEISE_CLIENT_ID", "dev-ameise-client", "OAuth client id issued by blau direkt", secret=True)
    ameise_client_secret: str = _s("AMEISE_CLIENT_SECRET", "dev-ameise-secret", "OAuth client secret (sent as HTTP Basic)", secret=True)
    ameise_refresh_token: str = _s("AMEISE_REFRESH_TOKEN", "", "optional refresh token to start from; otherwise connect with `syncbridge connect ameise`")
    ameise_scope: str = _s("AMEISE_SCOPE", "ameise/mitarbeiterwebservice offline", "OAuth scopes; offline yields the refresh token")
    ameise_vermittler: str = _s("AMEISE_VERMITTLER", "", "Vermittler number put on contracts that name none")
    ameise_portal_url: str = _s("AMEISE_PORTAL_URL", "https://www.maklerinfo.biz", "base of the deep links into the Ameise portal (https://www.maklerinfo.biz or https://ameise.app)", parse=_http_url())

    # DailyUp (Ameise -> CRM, daily)
    dailyup_dir: str = _s("DAILYUP_DIR", "var/dailyup", "folder of DailyUp deliveries: inbox/ is the drop folder (FTP target, uploads), archive/ keeps accepted ones, rejected/ the others")
    dailyup_encoding: str = _s("DAILYUP_ENCODING", "auto", "encoding of delivery CSV files: auto (UTF-8 with or without BOM, else CP1252), utf-8, cp1252 or iso-8859-1", parse=_encoding())
    dailyup_delimiter: str = _s("DAILYUP_DELIMITER", ";", "field delimiter of delivery CSV files", parse=_delimiter())
    dailyup_date_format: str = _s("DAILYUP_DATE_FORMAT", "%d.%m.%Y", "date format of delivery CSV files (strptime)")
    dailyup_decimal_comma: bool = _s("DAILYUP_DECIMAL_COMMA", "true", "decimals are written 1.234,56 (true) or 1234.56 (false)", parse=_flag())
    dailyup_at: time = _s("DAILYUP_AT", "06:00", "daily time (HH:MM, UTC) by which the delivery is expected; the worker looks for it then and reports a missing one", parse=_TimeOfDay())
    dailyup_poll_seconds: float = _s("DAILYUP_POLL_SECONDS", "30", "how often the DailyUp worker looks into the drop folder", parse=_seconds())
    dailyup_upload_token: str = _s("DAILYUP_UPLOAD_TOKEN", "dev-dailyup-upload-token", "secret of POST /dailyup/deliveries (X-Upload-Token header or Bearer)", secret=True)
    dailyup_max_upload_bytes: int = _s("DAILYUP_MAX_UPLOAD_BYTES", "1073741824", "largest delivery accepted by upload; larger answers 413", parse=_positive_int())
    dailyup_max_unpacked_bytes: int = _s("DAILYUP_MAX_UNPACKED_BYTES", "2147483648", "most bytes the CSV files of one delivery may unpack to (declared by the ZIP and counted while unpacking); a delivery over it is rejected", parse=_positive_int())
    dailyup_max_ratio: int = _s("DAILYUP_MAX_RATIO", "100", "highest compression ratio (unpacked / packed) of a CSV file over 1 MiB; a delivery over it (a ZIP bomb) is rejected", parse=_positive_int())
    dailyup_max_columns: int = _s("DAILYUP_MAX_COLUMNS", "1000", "most columns of a table's header; a delivery with more is rejected", parse=_positive_int())
    dailyup_max_fields: int = _s("DAILYUP_MAX_FIELDS", "2000", "most fields of one CSV row (never fewer than DAILYUP_MAX_COLUMNS); a delivery with a row holding more is rejected", parse=_positive_int())
    dailyup_max_row_length: int = _s("DAILYUP_MAX_ROW_LENGTH", "1048576", "most characters of one CSV row, all its lines; a delivery with a longer row is rejected without reading that row whole", parse=_positive_int())
    dailyup_batch_size: int = _s("DAILYUP_BATCH_SIZE", "100", "records per Zoho upsert of the return path (Zoho's maximum is 100)", parse=_batch_size())
    dailyup_batch_wait: float = _s("DAILYUP_BATCH_WAIT", "1", "seconds the return consumer waits to fill a batch before sending a partial one", parse=_seconds())
    dailyup_delete_mode: str = _s("DAILYUP_DELETE_MODE", "mark", "a record deleted in Ameise is: mark (status field set in the CRM), delete (deleted in the CRM) or ignore", parse=_one_of(DELETE_MODES))
    zoho_field_ameise_status: str = _s("ZOHO_FIELD_AMEISE_STATUS", "Ameise_Status", "API name of the CRM field set to 'geloescht' when Ameise no longer delivers the record")
    link_guard: bool = _s("LINK_GUARD", "true", "the return path holds (\"needs linking\") an unlinked Ameise customer or contract with a plausible CRM twin instead of creating it: one with an open linking proposal; until `syncbridge link propose` has run, one whose e-mail, company name or policy number a CRM record without a number carries (one Zoho search each)", parse=_flag())
    admin_token: str = _s("ADMIN_TOKEN", "dev-admin-token", "secret of the admin HTTP API (/dailyup/imports, /admin/dead-letters): X-Admin-Token header or Bearer", secret=True)

    # operator dashboard
    dashboard_secret_key: str = _s("DASHBOARD_SECRET_KEY", "dev-dashboard-secret-key", "signs the dashboard's session cookies and CSRF tokens (a long random string)", secret=True)
    dashboard_session_minutes: int = _s("DASHBOARD_SESSION_MINUTES", "30", "minutes without a request after which a dashboard sign-in ends", parse=_positive_int())
    dashboard_login_attempts: int = _s("DASHBOARD_LOGIN_ATTEMPTS", "5", "failed sign-ins of one account within DASHBOARD_LOGIN_WINDOW after which it is locked for the rest of the window", parse=_positive_int())
    dashboard_login_attempts_per_address: int = _s("DASHBOARD_LOGIN_ATTEMPTS_PER_ADDRESS", "20", "failed sign-ins from one client address within DASHBOARD_LOGIN_WINDOW after which it is locked for the rest of the window", parse=_positive_int())
    dashboard_login_window: float = _s("DASHBOARD_LOGIN_WINDOW", "900", "seconds over which failed dashboard sign-ins are counted", parse=_seconds(zero=False))
    dashboard_url: str = _s("DASHBOARD_URL", "http://127.0.0.1:8080", "URL under which the dashboard is reachable (the OAuth callbacks of its Connections page)")
    metrics_token: str = _s("METRICS_TOKEN", "dev-metrics-token", "secret of the dashboard's /metrics (Prometheus: Authorization: Bearer)", secret=True)
    dashboard_proxies: int = _s("DASHBOARD_PROXIES", "0", "reverse proxies in front of the dashboard whose X-Forwarded-For / -Proto are trusted (the client address the sign-in limit counts)", parse=_count())

    # mapping, HTTP, monitoring
    mapping_file: str = _s("MAPPING_FILE", "", "TOML field mapping; empty = the bundled syncbridge/mappings/default.toml")
    preflight_interval: float = _s("PREFLIGHT_INTERVAL", "60", "seconds between two preflight checks of a worker whose direction is paused because the check fails (`syncbridge check`)", parse=_seconds(zero=False))
    http_timeout: float = _s("HTTP_TIMEOUT", "15", "seconds before a call to Zoho or Ameise counts as unavailable", parse=_seconds(zero=False))
    token_refresh_margin: float = _s("TOKEN_REFRESH_MARGIN", "300", "refresh access tokens this many seconds before they expire", parse=_seconds())
    token_key: str = _s("TOKEN_KEY", DEV_TOKEN_KEY, "Fernet key encrypting the OAuth tokens stored in the database (make one: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'); to rotate, give new,old (comma-separated: the first encrypts, all decrypt); the default is a public development key", secret=True)
    allow_http_oauth: bool = _s("ALLOW_HTTP_OAUTH", "false", "allow OAuth over plain http to non-loopback hosts (simulators in docker-compose); refused in production", parse=_flag())
    sentry_dsn: str = _s("SENTRY_DSN", "", "Sentry DSN; empty = nothing is sent", secret=False)
    release: str = _s("RELEASE", "", "release name reported to Sentry")
    zoho_daily_credits: int = _s("ZOHO_DAILY_CREDITS", "50000", "the Zoho org's API credits per rolling 24 h (its edition's budget, e.g. Enterprise 50,000 + 1,000 per user); `syncbridge status` and the dashboard show the share used", parse=_positive_int())

    # catch-up sweep and backfill
    sweep_minutes: str = _s("SWEEP_MINUTES", "off", "minutes between two catch-up sweeps of the CRM (off, 5, 15 or 60): records changed since the last sweep and not synced since are queued, so a webhook that never arrived is not lost", parse=_one_of(("off", "5", "15", "60")))
    sweep_overlap: float = _s("SWEEP_OVERLAP", "120", "seconds each sweep looks back before the last sweep's watermark (clock differences, changes saved while a sweep ran)", parse=_seconds())
    sweep_deleted: str = _s("SWEEP_DELETED", "ignore", "records deleted in the CRM are recorded (`syncbridge sweep deleted`) and: ignore (nothing more) or report (a warning and an activity-log entry)", parse=_one_of(("ignore", "report")))
    bulk_credit_share: float = _s("BULK_CREDIT_SHARE", "0.5", "share (0..1) of the daily Zoho credit budget the backfill and the sweep may use in 24 h; they slow down before it and pause at it, event-driven syncs never wait", parse=_share())
    zoho_concurrency: int = _s("ZOHO_CONCURRENCY", "5", "Zoho API calls the backfill and the sweep have in flight at most (the org's concurrency limit is 5 to 25 per app)", parse=_positive_int())

    # the CRM -> Ameise worker
    sync_concurrency: int = _s("SYNC_CONCURRENCY", "32", "records one crm-to-ameise worker process syncs at once (a pool of threads; the events of one record always one after another); 1 = one message at a time", parse=_positive_int())
    zoho_sync_concurrency: int = _s("ZOHO_SYNC_CONCURRENCY", "10", "Zoho API calls the sync workers (crm-to-ameise, ameise-to-crm) have in flight at most: on PostgreSQL all their processes together (they share it through the database), on SQLite each process; at most the org's concurrency limit", parse=_positive_int())

    # ---------------------------------------------------------------- loading
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read and type every setting from ``environ`` (default ``os.environ``), then apply overrides.

        Overrides are given as text, like the variables.  Every problem is reported
        at once, one line each, in one :class:`ConfigError`.
        """
        environ = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for f in fields(cls):
            meta: Setting = f.metadata["setting"]
            if meta.env in environ:
                raw[f.name] = environ[meta.env]
        raw.update(overrides)
        return cls._build(raw)

    def with_overrides(self, **overrides: Any) -> Settings:
        """These settings with some replaced (given as text, like the variables)."""
        values, problems = _typed(overrides)
        if problems:
            raise ConfigError("\n".join(problems))
        settings = replace(self, **values)
        settings._check()
        return settings

    @classmethod
    def _build(cls, raw: dict[str, Any]) -> Settings:
        values, problems = _typed(raw)
        if problems:
            raise ConfigError("\n".join(problems))
        settings = cls(**values)
        settings._check()
        return settings

    @classmethod
    def describe(cls) -> list[Setting]:
        """Every setting with its variable, default and help (for the README and --help)."""
        return [f.metadata["setting"] for f in fields(cls)]

    def _check(self) -> None:
        """The rules that tie settings together; every broken one is reported at once."""
        problems: list[str] = []
        if self.production:
            missing = [meta.env for meta, value in ((f.metadata["setting"], getattr(self, f.name)) for f in fields(self))
                       if meta.secret and (not value or value == meta.parse(meta.default))]
            if not self.broker_url:
                missing.append(PREFIX + "BROKER_URL")
            if missing:
                problems.append("production mode needs these settings (no development defaults): "
                                + ", ".join(sorted(missing)))
            if self.allow_http_oauth:
                problems.append(f"{PREFIX}ALLOW_HTTP_OAUTH must not be set in production: tokens would travel "
                                "unencrypted")
        try:
            token_keys = parse_token_keys(self.token_key)
        except TokenKeyError as exc:
            problems.append(str(exc))
        else:
            if self.production and token_keys[0] == DEV_TOKEN_KEY.encode("ascii") and not any(
                    "TOKEN_KEY" in problem for problem in problems):
                problems.append(f"{PREFIX}TOKEN_KEY: the development key must not encrypt tokens in production")
        if problems:
            raise ConfigError("\n".join(problems))

    # ---------------------------------------------------------------- derived
    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def effective_broker_url(self) -> str:
        # A host part keeps kombu from warning that none was supplied.
        return self.broker_url or "memory://localhost/"

    @property
    def embedded_broker(self) -> bool:
        return self.effective_broker_url.startswith("memory://")

    @property
    def dailyup_reader_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`syncbridge.dailyup.reader.open_delivery`."""
        return {"encoding": self.dailyup_encoding.lower(), "delimiter": self.dailyup_delimiter,
                "date_format": self.dailyup_date_format, "decimal_comma": self.dailyup_decimal_comma,
                "max_unpacked_bytes": self.dailyup_max_unpacked_bytes, "max_ratio": self.dailyup_max_ratio,
                "max_columns": self.dailyup_max_columns, "max_fields": self.dailyup_max_fields,
                "max_row_length": self.dailyup_max_row_length}

    def module_for(self, kind: str) -> str:
        """The CRM module that holds entities of ``kind`` (first configured)."""
        for module, entity in self.zoho_modules.items():
            if entity == kind:
                return module
        raise ConfigError(f"no CRM module is configured for {kind!r} in {PREFIX}ZOHO_MODULES")


def _typed(raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The typed values of the settings given as text, and a line for each one that is not valid."""
    known = {f.name: f.metadata["setting"] for f in fields(Settings)}
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in raw.items():
        meta = known.get(name)
        if meta is None:
            raise TypeError(f"unknown setting {name!r}")
        try:
            values[name] = meta.parse(value)
        except ValidationError as exc:
            problems.extend(f"{meta.env} {message}, not {value!r}" for message in _messages(exc.messages))
    return values, problems


def _messages(messages: Any) -> list[str]:
    if isinstance(messages, dict):
        return [m for value in messages.values() for m in _messages(value)]
    if isinstance(messages, (list, tuple)):
        return [m for value in messages for m in _messages(value)]
    return [str(messages)]


def ameise_deep_link(portal_url: str, entity: str, number: str) -> str:
    """The Ameise portal's page of a customer (Kundennummer) or contract (Vertragsnummer)."""
    show = {"customer": "kunde", "contract": "vertrag"}[entity]
    return f"{portal_url.rstrip('/')}/maklerportal/?show={show}&{show}={quote(str(number), safe='')}"
