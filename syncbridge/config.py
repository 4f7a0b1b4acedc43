"""Settings from the environment, in one place, with development defaults.

Every setting is read from a ``SYNCBRIDGE_*`` variable (``SENTRY_DSN`` keeps its
usual name).  In production mode (``SYNCBRIDGE_ENV=production``) a missing secret
stops the process at start-up with a clear message instead of running with a
development default.
"""
from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import time

from cryptography.fernet import Fernet

PREFIX = "SYNCBRIDGE_"

# Entity kinds a CRM module can feed.  "person" and "company" are both Ameise
# customers (Kunden) with a different Personentyp; "contract" is a Vertrag.
ENTITY_KINDS = ("person", "company", "contract")
BOOLEANS = ("true", "false", "1", "0", "yes", "no")
# The worker processes, by the name `syncbridge worker NAME` and the Procfile use.
WORKERS = ("crm-to-ameise", "ameise-to-crm", "dailyup", "dead-letters")
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
    """A setting is missing or malformed."""


def _parse_pairs(raw: str, *, what: str) -> dict[str, str]:
    """Parse ``a=1,b=2`` into a dict; whitespace around items is ignored."""
    result: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"{what}: expected NAME=VALUE pairs separated by commas, got {item!r}")
        result[key.strip()] = value.strip()
    return result


@dataclass(frozen=True)
class Setting:
    """Metadata of one setting: its variable, default and whether it is a secret."""

    env: str
    default: str
    help: str
    secret: bool = False


def _s(name: str, default: str, help: str, *, secret: bool = False):
    return field(default=default, metadata={"setting": Setting(PREFIX + name if not name.startswith("SENTRY") else name, default, help, secret)})


@dataclass(frozen=True)
class Settings:
    """All settings of the service.  Build with :meth:`from_env`."""

    env: str = _s("ENV", "development", "development or production; production refuses to start without its secrets")
    log_level: str = _s("LOG_LEVEL", "INFO", "Python log level")
    database_url: str = _s("DATABASE_URL", "sqlite:///syncbridge.db", "SQLAlchemy URL of the service's own database (PostgreSQL in production)")
    broker_url: str = _s("BROKER_URL", "", "RabbitMQ URL (amqp://user:pass@host:5672/vhost); empty = in-process broker (memory://), single process only")
    namespace: str = _s("NAMESPACE", "syncbridge", "prefix of every exchange and queue name")
    prefetch_count: str = _s("PREFETCH_COUNT", "10", "messages a consumer takes from RabbitMQ before acknowledging")
    delivery_limit: str = _s("DELIVERY_LIMIT", "20", "quorum-queue delivery limit: a message redelivered more often is dead-lettered by RabbitMQ")
    record_lease: str = _s("RECORD_LEASE", "120", "seconds a worker may hold one CRM record while it syncs it; the lease of a worker that died runs out after this")
    coalesce_margin: str = _s("COALESCE_MARGIN", "1", "seconds: an event received this much before a finished sync of its record began is covered by it and not fetched again (clock difference between receiver and worker hosts)")
    retry_delays: str = _s("RETRY_DELAYS", "10,60,600,3600", "seconds before each retry of a message that met an unavailable system; after the last, it is dead-lettered")
    publish_timeout: str = _s("PUBLISH_TIMEOUT", "5", "seconds to wait for the broker's publisher confirm before answering 503")
    public_url: str = _s("PUBLIC_URL", "http://127.0.0.1:8000", "URL under which the receiver is reachable (OAuth redirects, printed hints)")

    # webhook receiver
    zoho_webhook_token: str = _s("ZOHO_WEBHOOK_TOKEN", "dev-zoho-webhook-token", "shared secret of Zoho workflow-rule webhooks (X-Webhook-Token header or token parameter)", secret=True)
    zoho_notify_token: str = _s("ZOHO_NOTIFY_TOKEN", "dev-zoho-notify-token", "token of the Zoho Notification API channel (sent in the body)", secret=True)
    forms_tokens: str = _s("FORMS_TOKENS", "zoho-forms=dev-forms-token,zoho-flow=dev-flow-token", "per-source secrets of /webhooks/forms/<source>, as source=token pairs", secret=True)
    forms_default_module: str = _s("FORMS_DEFAULT_MODULE", "Contacts", "CRM module of a Forms/Flow event that names none")
    max_body_bytes: str = _s("MAX_BODY_BYTES", "65536", "largest webhook body accepted; larger answers 413")
    body_read_timeout: str = _s("BODY_READ_TIMEOUT", "10", "seconds a client may take to send a request body once its headers are in (an authenticated DailyUp upload: seconds between two reads); slower answers 408")

    # Zoho CRM
    zoho_accounts_url: str = _s("ZOHO_ACCOUNTS_URL", "https://accounts.zoho.eu", "Zoho accounts server of the data centre (OAuth token endpoint)")
    zoho_api_url: str = _s("ZOHO_API_URL", "", "Zoho API domain; empty = the api_domain returned with the access token")
    zoho_client_id: str = _s("ZOHO_CLIENT_ID", "dev-zoho-client", "OAuth client id (Zoho API console)", secret=True)
    zoho_client_secret: str = _s("ZOHO_CLIENT_SECRET", "dev-zoho-secret", "OAuth client secret", secret=True)
    zoho_refresh_token: str = _s("ZOHO_REFRESH_TOKEN", "dev-zoho-refresh-token", "OAuth refresh token (self-client grant with access_type=offline)", secret=True)
    zoho_modules: str = _s("ZOHO_MODULES", "Contacts=person,Accounts=company,Deals=contract", "CRM modules that are synced, each with its entity kind (person, company, contract)")
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

    # DailyUp (Ameise -> CRM, daily)
    dailyup_dir: str = _s("DAILYUP_DIR", "var/dailyup", "folder of DailyUp deliveries: inbox/ is the drop folder (FTP target, uploads), archive/ keeps accepted ones, rejected/ the others")
    dailyup_encoding: str = _s("DAILYUP_ENCODING", "auto", "encoding of delivery CSV files: auto (UTF-8 with or without BOM, else CP1252), utf-8, cp1252 or iso-8859-1")
    dailyup_delimiter: str = _s("DAILYUP_DELIMITER", ";", "field delimiter of delivery CSV files")
    dailyup_date_format: str = _s("DAILYUP_DATE_FORMAT", "%d.%m.%Y", "date format of delivery CSV files (strptime)")
    dailyup_decimal_comma: str = _s("DAILYUP_DECIMAL_COMMA", "true", "decimals are written 1.234,56 (true) or 1234.56 (false)")
    dailyup_at: str = _s("DAILYUP_AT", "06:00", "daily time (HH:MM, UTC) by which the delivery is expected; the worker looks for it then and reports a missing one")
    dailyup_poll_seconds: str = _s("DAILYUP_POLL_SECONDS", "30", "how often the DailyUp worker looks into the drop folder")
    dailyup_upload_token: str = _s("DAILYUP_UPLOAD_TOKEN", "dev-dailyup-upload-token", "secret of POST /dailyup/deliveries (X-Upload-Token header or Bearer)", secret=True)
    dailyup_max_upload_bytes: str = _s("DAILYUP_MAX_UPLOAD_BYTES", "1073741824", "largest delivery accepted by upload; larger answers 413")
    dailyup_max_unpacked_bytes: str = _s("DAILYUP_MAX_UNPACKED_BYTES", "2147483648", "most bytes the CSV files of one delivery may unpack to (declared by the ZIP and counted while unpacking); a delivery over it is rejected")
    dailyup_max_ratio: str = _s("DAILYUP_MAX_RATIO", "100", "highest compression ratio (unpacked / packed) of a CSV file over 1 MiB; a delivery over it (a ZIP bomb) is rejected")
    dailyup_max_columns: str = _s("DAILYUP_MAX_COLUMNS", "1000", "most columns of a table's header; a delivery with more is rejected")
    dailyup_max_fields: str = _s("DAILYUP_MAX_FIELDS", "2000", "most fields of one CSV row (never fewer than DAILYUP_MAX_COLUMNS); a delivery with a row holding more is rejected")
    dailyup_max_row_length: str = _s("DAILYUP_MAX_ROW_LENGTH", "1048576", "most characters of one CSV row, all its lines; a delivery with a longer row is rejected without reading that row whole")
    dailyup_batch_size: str = _s("DAILYUP_BATCH_SIZE", "100", "records per Zoho upsert of the return path (Zoho's maximum is 100)")
    dailyup_batch_wait: str = _s("DAILYUP_BATCH_WAIT", "1", "seconds the return consumer waits to fill a batch before sending a partial one")
    dailyup_delete_mode: str = _s("DAILYUP_DELETE_MODE", "mark", "a record deleted in Ameise is: mark (status field set in the CRM), delete (deleted in the CRM) or ignore")
    zoho_field_ameise_status: str = _s("ZOHO_FIELD_AMEISE_STATUS", "Ameise_Status", "API name of the CRM field set to 'geloescht' when Ameise no longer delivers the record")
    admin_token: str = _s("ADMIN_TOKEN", "dev-admin-token", "secret of the admin HTTP API (/dailyup/imports, /admin/dead-letters): X-Admin-Token header or Bearer", secret=True)

    # mapping, HTTP, monitoring
    mapping_file: str = _s("MAPPING_FILE", "", "TOML field mapping; empty = the bundled syncbridge/mappings/default.toml")
    http_timeout: str = _s("HTTP_TIMEOUT", "15", "seconds before a call to Zoho or Ameise counts as unavailable")
    token_refresh_margin: str = _s("TOKEN_REFRESH_MARGIN", "300", "refresh access tokens this many seconds before they expire")
    token_key: str = _s("TOKEN_KEY", DEV_TOKEN_KEY, "Fernet key encrypting the OAuth tokens stored in the database (make one: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'); to rotate, give new,old (comma-separated: the first encrypts, all decrypt); the default is a public development key", secret=True)
    allow_http_oauth: str = _s("ALLOW_HTTP_OAUTH", "false", "allow OAuth over plain http to non-loopback hosts (simulators in docker-compose); refused in production")
    sentry_dsn: str = _s("SENTRY_DSN", "", "Sentry DSN; empty = nothing is sent", secret=False)
    release: str = _s("RELEASE", "", "release name reported to Sentry")

    # ---------------------------------------------------------------- loading
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: str) -> Settings:
        """Read every setting from ``environ`` (default ``os.environ``), then apply overrides."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            meta: Setting = f.metadata["setting"]
            if meta.env in environ:
                values[f.name] = environ[meta.env]
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def with_overrides(self, **overrides: str) -> Settings:
        settings = replace(self, **overrides)
        settings.validate()
        return settings

    @classmethod
    def describe(cls) -> list[Setting]:
        """Every setting with its variable, default and help (for the README and --help)."""
        return [f.metadata["setting"] for f in fields(cls)]

    def validate(self) -> None:
        if self.env not in ("development", "production"):
            raise ConfigError(f"SYNCBRIDGE_ENV must be development or production, not {self.env!r}")
        for name in ("prefetch_count", "delivery_limit", "max_body_bytes", "dailyup_max_upload_bytes", "dailyup_batch_size",
                     "dailyup_max_unpacked_bytes", "dailyup_max_ratio", "dailyup_max_columns", "dailyup_max_fields",
                     "dailyup_max_row_length"):
            self._int(name)
        for name in ("publish_timeout", "http_timeout", "token_refresh_margin", "dailyup_poll_seconds", "dailyup_batch_wait",
                     "coalesce_margin", "record_lease"):
            self._float(name)
        for name in ("publish_timeout", "http_timeout", "body_read_timeout"):
            if self._float(name) == 0:
                raise ConfigError(f"{self._env_name(name)} must be more than 0 (0 would mean waiting forever)")
        if self.allow_http_oauth.lower() not in BOOLEANS:
            raise ConfigError(f"{PREFIX}ALLOW_HTTP_OAUTH must be true or false, not {self.allow_http_oauth!r}")
        if self.production and self.http_oauth_allowed:
            raise ConfigError(f"{PREFIX}ALLOW_HTTP_OAUTH must not be set in production: tokens would travel unencrypted")
        if self.dailyup_encoding.lower() not in DAILYUP_ENCODINGS:
            raise ConfigError(f"{PREFIX}DAILYUP_ENCODING must be one of {', '.join(DAILYUP_ENCODINGS)}, not {self.dailyup_encoding!r}")
        if len(self.dailyup_delimiter) != 1:
            raise ConfigError(f"{PREFIX}DAILYUP_DELIMITER must be one character, not {self.dailyup_delimiter!r}")
        if self.dailyup_decimal_comma.lower() not in BOOLEANS:
            raise ConfigError(f"{PREFIX}DAILYUP_DECIMAL_COMMA must be true or false, not {self.dailyup_decimal_comma!r}")
        if self.dailyup_delete_mode not in DELETE_MODES:
            raise ConfigError(f"{PREFIX}DAILYUP_DELETE_MODE must be one of {', '.join(DELETE_MODES)}, not {self.dailyup_delete_mode!r}")
        if not 1 <= self._int("dailyup_batch_size") <= 100:
            raise ConfigError(f"{PREFIX}DAILYUP_BATCH_SIZE must be between 1 and 100 (Zoho's limit per call)")
        self.dailyup_time  # noqa: B018
        self.retry_delays_s  # noqa: B018
        self.forms_token_map  # noqa: B018 - parse to fail fast
        self.module_entities  # noqa: B018
        if self.production:
            missing = [
                f.metadata["setting"].env
                for f in fields(self)
                if f.metadata["setting"].secret and (not getattr(self, f.name) or getattr(self, f.name) == f.default)
            ]
            if not self.broker_url:
                missing.append(PREFIX + "BROKER_URL")
            if missing:
                raise ConfigError("production mode needs these settings (no development defaults): " + ", ".join(sorted(missing)))
        try:
            token_keys = parse_token_keys(self.token_key)
        except TokenKeyError as exc:
            raise ConfigError(str(exc)) from None
        if self.production and token_keys[0] == DEV_TOKEN_KEY.encode("ascii"):
            raise ConfigError(f"{PREFIX}TOKEN_KEY: the development key must not encrypt tokens in production")

    def _int(self, name: str) -> int:
        raw = getattr(self, name)
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{self._env_name(name)} must be a whole number, not {raw!r}") from None
        if value <= 0:
            raise ConfigError(f"{self._env_name(name)} must be positive, not {raw!r}")
        return value

    def _float(self, name: str) -> float:
        raw = getattr(self, name)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{self._env_name(name)} must be a number, not {raw!r}") from None
        if value < 0:
            raise ConfigError(f"{self._env_name(name)} must not be negative, not {raw!r}")
        return value

    @classmethod
    def _env_name(cls, name: str) -> str:
        return next(f.metadata["setting"].env for f in fields(cls) if f.name == name)

    # ---------------------------------------------------------------- typed views
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
    def prefetch(self) -> int:
        return self._int("prefetch_count")

    @property
    def delivery_limit_int(self) -> int:
        return self._int("delivery_limit")

    @property
    def retry_delays_s(self) -> tuple[int, ...]:
        """The retry delays in seconds, ascending (each one a retry queue)."""
        try:
            delays = tuple(int(part) for part in self.retry_delays.split(",") if part.strip())
        except ValueError:
            raise ConfigError(f"{PREFIX}RETRY_DELAYS must be whole seconds separated by commas, not {self.retry_delays!r}") from None
        if not delays or any(d <= 0 for d in delays) or list(delays) != sorted(set(delays)):
            raise ConfigError(f"{PREFIX}RETRY_DELAYS must be one or more rising positive numbers of seconds, not {self.retry_delays!r}")
        return delays

    @property
    def publish_timeout_s(self) -> float:
        return self._float("publish_timeout")

    @property
    def max_body(self) -> int:
        return self._int("max_body_bytes")

    @property
    def body_read_timeout_s(self) -> float:
        return self._float("body_read_timeout")

    @property
    def http_timeout_s(self) -> float:
        return self._float("http_timeout")

    @property
    def token_refresh_margin_s(self) -> float:
        return self._float("token_refresh_margin")

    @property
    def http_oauth_allowed(self) -> bool:
        return self.allow_http_oauth.lower() in ("true", "1", "yes")

    @property
    def record_lease_s(self) -> float:
        return self._float("record_lease")

    @property
    def coalesce_margin_s(self) -> float:
        return self._float("coalesce_margin")

    @property
    def dailyup_batch(self) -> int:
        return self._int("dailyup_batch_size")

    @property
    def dailyup_batch_wait_s(self) -> float:
        return self._float("dailyup_batch_wait")

    @property
    def dailyup_poll_s(self) -> float:
        return self._float("dailyup_poll_seconds")

    @property
    def dailyup_max_upload(self) -> int:
        return self._int("dailyup_max_upload_bytes")

    @property
    def dailyup_decimal_comma_on(self) -> bool:
        return self.dailyup_decimal_comma.lower() in ("true", "1", "yes")

    @property
    def dailyup_time(self) -> time:
        """The daily time of :attr:`dailyup_at` (UTC)."""
        try:
            hours, minutes = self.dailyup_at.split(":")
            return time(int(hours), int(minutes))
        except ValueError:
            raise ConfigError(f"{PREFIX}DAILYUP_AT must be a time HH:MM, not {self.dailyup_at!r}") from None

    @property
    def dailyup_reader_options(self) -> dict:
        """Keyword arguments of :func:`syncbridge.dailyup.reader.open_delivery`."""
        return {"encoding": self.dailyup_encoding.lower(), "delimiter": self.dailyup_delimiter,
                "date_format": self.dailyup_date_format, "decimal_comma": self.dailyup_decimal_comma_on,
                "max_unpacked_bytes": self._int("dailyup_max_unpacked_bytes"),
                "max_ratio": self._int("dailyup_max_ratio"), "max_columns": self._int("dailyup_max_columns"),
                "max_fields": self._int("dailyup_max_fields"), "max_row_length": self._int("dailyup_max_row_length")}

    @property
    def forms_token_map(self) -> dict[str, str]:
        return _parse_pairs(self.forms_tokens, what=PREFIX + "FORMS_TOKENS")

    @property
    def module_entities(self) -> dict[str, str]:
        """CRM module name -> entity kind, e.g. ``{"Contacts": "person"}``."""
        pairs = _parse_pairs(self.zoho_modules, what=PREFIX + "ZOHO_MODULES")
        for module, kind in pairs.items():
            if kind not in ENTITY_KINDS:
                raise ConfigError(f"{PREFIX}ZOHO_MODULES: {module}={kind}: kind must be one of {', '.join(ENTITY_KINDS)}")
        return pairs

    def module_for(self, kind: str) -> str:
        """The CRM module that holds entities of ``kind`` (first configured)."""
        for module, entity in self.module_entities.items():
            if entity == kind:
                return module
        raise ConfigError(f"no CRM module is configured for {kind!r} in {PREFIX}ZOHO_MODULES")
