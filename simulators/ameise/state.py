"""The simulated Ameise's state: employees, OAuth grants, customers, contracts, validation, faults."""
from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

from simulators.jsoncopy import json_copy

API_PREFIX = "/service/bd/employee/1.0/rest"
SCOPE_API = "ameise/mitarbeiterwebservice"
OFFLINE_SCOPES = ("offline", "offline_access")
KNOWN_SCOPES = {SCOPE_API, *OFFLINE_SCOPES, "openid", "profile", "email"}
CODE_LIFETIME = 120.0

DEFAULT_CLIENT_ID = "dev-ameise-client"
DEFAULT_CLIENT_SECRET = "dev-ameise-secret"
DEFAULT_EMPLOYEE_ID = "03A71H_XDSJKU"
DEFAULT_VERMITTLER = "A1B2C3"

FIRST_KUNDENNUMMER = 5001234568
FIRST_VERTRAGSNUMMER = 1119877

# The customer as the employee web service takes it (create) and gives it (read).
CUSTOMER_FIELDS = ("Anrede", "Person", "Kontaktdaten", "Vermittler")
# A PUT of the customer itself: contact data and addresses have their own sub-resources.
CUSTOMER_UPDATE_FIELDS = ("Anrede", "Person", "Vermittler")
CUSTOMER_READ_ONLY = ("Id", "Benutzername", "GeaendertAm")
PERSON_FIELDS = ("Typ", "Titel", "Vorname", "Nachname", "Geburtsdatum", "Geschlecht", "Firmenname", "Rechtsform")
KONTAKT_FIELDS = ("Kontext", "Typ", "Value")
KONTAKT_TYPEN = ("email", "telefon", "mobil", "fax")
KONTEXTE = ("privat", "geschaeftlich")
ADRESSE_FIELDS = ("Strasse", "Postleitzahl", "Ort", "Land")
PERSONENTYPEN = ("natuerlich", "juristisch")
GERMANY = {"deutschland", "de", "deu", "germany"}

CONTRACT_FIELDS = (
    "Status", "Gesellschaft", "Kunde", "Sparte", "Beitrag", "Laufzeit", "Risiko",
    "Antragsnummer", "Versicherungsscheinnummer", "Vermittler",
)
CONTRACT_READ_ONLY = ("Id", "GeaendertAm")
BEITRAG_FIELDS = ("Brutto", "Netto", "Steuer", "Zahlweise")
LAUFZEIT_FIELDS = ("Beginn", "Ablauf")
CONTRACT_NESTED = {"Beitrag": BEITRAG_FIELDS, "Laufzeit": LAUFZEIT_FIELDS}

SEARCH_FILTERS = ("q", "mail")
SEARCH_MAX_SIZE = 100

PAGE_FOREIGN_VERMITTLER = "Error #400 - Fehlerhafte anfrage!"
PAGE_SERVER_ERROR = "Whoops, da ist wohl etwas schief gegangen."
PAGE_TITLES = {
    400: PAGE_FOREIGN_VERMITTLER,
    401: "Error #401 - Nicht angemeldet",
    403: "Error #403 - Zugriff verweigert",
    404: "Error #404 - Seite nicht gefunden",
    405: "Error #405 - Methode nicht erlaubt",
    429: "Error #429 - Zu viele Anfragen",
    500: PAGE_SERVER_ERROR,
    502: "Error #502 - Bad Gateway",
    503: "Error #503 - Dienst nicht verfügbar",
    504: "Error #504 - Gateway Timeout",
}

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CODE = re.compile(r"\d{1,3}")
_GERMAN_PLZ = re.compile(r"\d{5}")
_SPARTE = re.compile(r"\d{3}")
# The names each write takes, read-only ones included (they are ignored), looked up per field.
_KNOWN_FIELDS: dict[tuple[str, ...], frozenset[str]] = {}
_PERSON_FIELDS = frozenset(PERSON_FIELDS)
_CONTACT_INPUT_FIELDS = frozenset((*KONTAKT_FIELDS, "Id"))
_ADDRESS_INPUT_FIELDS = frozenset((*ADRESSE_FIELDS, "Typ"))


# ---------------------------------------------------------------- domain errors
class SimulatorError(Exception):
    """Base of the errors the simulated Ameise answers with."""


class ValidationFailed(SimulatorError):
    """Invalid data: answered as 400 with a JSON list of ``{"field", "message"}``."""

    def __init__(self, messages: list[dict[str, str]]) -> None:
        super().__init__("; ".join(m["message"] for m in messages))
        self.messages = messages


class ForeignVermittler(SimulatorError):
    """The Vermittler is not the employee's: answered as the 400 HTML page naming no field."""


class NotFound(SimulatorError):
    """No such customer or contract: answered as the 404 HTML page."""


class UnknownField(SimulatorError):
    """A field the service does not know (the flat customer of old, a typo): the 400 HTML page naming no field.

    The message names the field for the simulator's own logs and tests; the answer does not.
    """


class _AdminError(Exception):
    """Bad input to the admin API: answered as 400 ``{"error": ...}``."""


# ---------------------------------------------------------------- records of the state
@dataclass
class Employee:
    """A broker employee who can connect; ``vermittler`` is their Vermittler number."""

    id: str
    vermittler: str
    name: str
    email: str


PKCE_METHODS = ("S256", "plain")
# RFC 7636 4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"
PKCE_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
PKCE_CHALLENGE = PKCE_VERIFIER  # S256: BASE64URL without padding (43 characters); plain: the verifier itself


def pkce_challenge(verifier: str, method: str = "S256") -> str:
    """The code_challenge of a code_verifier (RFC 7636 4.2)."""
    if method == "plain":
        return verifier
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def pkce_matches(challenge: str, method: str, verifier: str) -> bool:
    """RFC 7636 4.6: a code issued with a challenge needs its verifier; one issued without takes none."""
    if not challenge:
        return not verifier
    if not PKCE_VERIFIER.fullmatch(verifier):
        return False
    return hmac.compare_digest(pkce_challenge(verifier, method or "plain"), challenge)


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str
    employee_id: str
    scope: str
    expires_at: float
    code_challenge: str = ""            # RFC 7636: empty when the client sent none
    code_challenge_method: str = ""     # "S256" or "plain"


@dataclass
class AccessGrant:
    client_id: str
    employee_id: str
    scope: str
    expires_at: float


@dataclass
class RefreshGrant:
    client_id: str
    employee_id: str
    scope: str


@dataclass
class Fault:
    """The next ``count`` matching requests answer ``status`` (after ``delay`` seconds)."""

    status: int | None
    count: int
    path_prefix: str | None
    delay: float
    retry_after: float | None


# The last second _now_iso formatted and its text: the changes within one second share it.
_last_now: tuple[int, str] = (0, "")


def _now_iso() -> str:
    global _last_now
    now = datetime.now(UTC)
    second = int(now.timestamp())
    last = _last_now
    if last[0] == second:
        return last[1]
    text = now.isoformat(timespec="seconds")
    _last_now = (second, text)
    return text


def _is_iso_date(value: Any) -> bool:
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _msg(field: str | None, message: str) -> dict[str, str]:
    return {"field": field, "message": message} if field else {"message": message}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ---------------------------------------------------------------- validation
def _is_code(value: Any) -> bool:
    return isinstance(value, str) and _CODE.fullmatch(value) is not None


def check_customer_fields(data: Any, allowed: Iterable[str]) -> None:
    """Raise UnknownField for a field (or nested field) the service does not take; ValidationFailed for no object."""
    if not isinstance(data, dict):
        raise ValidationFailed([_msg(None, "Der Inhalt muss ein JSON-Objekt sein")])
    allowed = tuple(allowed)
    known = _KNOWN_FIELDS.get(allowed)
    if known is None:
        known = _KNOWN_FIELDS[allowed] = frozenset(allowed) | frozenset(CUSTOMER_READ_ONLY)
    for name in data:
        if name not in known:
            raise UnknownField(name)
    person = data.get("Person")
    if isinstance(person, dict):
        for name in person:
            if name not in _PERSON_FIELDS:
                raise UnknownField(f"Person.{name}")
    if "Kontaktdaten" in data and data["Kontaktdaten"] is not None:
        if not isinstance(data["Kontaktdaten"], list):
            raise ValidationFailed([_msg("Kontaktdaten", "Kontaktdaten muss eine Liste sein")])
        for entry in data["Kontaktdaten"]:
            check_contact_fields(entry)


def check_contact_fields(entry: Any) -> None:
    if not isinstance(entry, dict):
        raise ValidationFailed([_msg("Kontaktdaten", "Ein Kontaktdatum muss ein JSON-Objekt sein")])
    for name in entry:
        if name not in _CONTACT_INPUT_FIELDS:
            raise UnknownField(f"Kontaktdaten.{name}")


def check_address_fields(data: Any) -> None:
    if not isinstance(data, dict):
        raise ValidationFailed([_msg(None, "Der Inhalt muss ein JSON-Objekt sein")])
    for name in data:
        if name not in _ADDRESS_INPUT_FIELDS:
            raise UnknownField(name)


def validate_customer(record: dict[str, Any]) -> list[dict[str, str]]:
    """Messages for a complete customer record; empty when it is valid."""
    errors: list[dict[str, str]] = []
    for name in ("Anrede", "Vermittler"):
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            errors.append(_msg(name, f"{name} muss ein Text sein"))
    if record.get("Anrede") not in (None, "") and not _is_code(record["Anrede"]):
        errors.append(_msg("Anrede", "Anrede ist ein Schlüssel (z. B. \"1\"), kein Text"))
    person = record.get("Person")
    if not isinstance(person, dict):
        return [*errors, _msg("Person", "Person ist ein Pflichtfeld (ein Objekt)")]
    for name in PERSON_FIELDS:
        value = person.get(name)
        if value is not None and not isinstance(value, str):
            errors.append(_msg(f"Person.{name}", f"Person.{name} muss ein Text sein"))
    typ = person.get("Typ")
    if not typ:
        errors.append(_msg("Person.Typ", "Person.Typ ist ein Pflichtfeld"))
    elif typ not in PERSONENTYPEN:
        errors.append(_msg("Person.Typ", "Person.Typ muss 'natuerlich' oder 'juristisch' sein"))
    elif typ == "natuerlich" and not person.get("Nachname"):
        errors.append(_msg("Person.Nachname", "Person.Nachname ist ein Pflichtfeld"))
    elif typ == "juristisch" and not person.get("Firmenname"):
        errors.append(_msg("Person.Firmenname", "Person.Firmenname ist ein Pflichtfeld"))
    if person.get("Geburtsdatum") and not _is_iso_date(person["Geburtsdatum"]):
        errors.append(_msg("Person.Geburtsdatum", "Person.Geburtsdatum muss ein Datum im Format JJJJ-MM-TT sein"))
    for entry in record.get("Kontaktdaten") or []:
        errors += validate_contact(entry)
    return errors


def validate_contact(entry: dict[str, Any]) -> list[dict[str, str]]:
    errors = []
    if entry.get("Typ") not in KONTAKT_TYPEN:
        errors.append(_msg("Kontaktdaten.Typ", "Kontaktdaten.Typ muss einer von " + ", ".join(KONTAKT_TYPEN) + " sein"))
    if entry.get("Kontext") not in KONTEXTE:
        errors.append(_msg("Kontaktdaten.Kontext", "Kontaktdaten.Kontext muss einer von " + ", ".join(KONTEXTE) + " sein"))
    value = entry.get("Value")
    if not isinstance(value, str) or not value.strip():
        errors.append(_msg("Kontaktdaten.Value", "Kontaktdaten.Value ist ein Pflichtfeld (Text)"))
    elif entry.get("Typ") == "email" and "@" not in value:
        errors.append(_msg("Kontaktdaten.Value", "Kontaktdaten.Value ist keine E-Mail-Adresse"))
    return errors


def validate_address(address: dict[str, Any]) -> list[dict[str, str]]:
    errors = []
    for name in ADRESSE_FIELDS:
        value = address.get(name)
        if value is not None and not isinstance(value, str):
            errors.append(_msg(name, f"{name} muss ein Text sein"))
    land, plz = address.get("Land"), address.get("Postleitzahl")
    if (not isinstance(land, str) or not land.strip() or land.strip().lower() in GERMANY) and plz:
        if not (isinstance(plz, str) and _GERMAN_PLZ.fullmatch(plz)):
            errors.append(_msg("Postleitzahl", "Postleitzahl muss in Deutschland aus 5 Ziffern bestehen"))
    return errors


def email_of(customer: dict[str, Any]) -> str | None:
    """The first e-mail address of a customer's contact data."""
    for entry in customer.get("Kontaktdaten") or []:
        if entry.get("Typ") == "email" and entry.get("Value"):
            return str(entry["Value"])
    return None


def display_text(customer: dict[str, Any]) -> str:
    """The ``Text`` of a search hit: "Nachname, Vorname" or the company's name, and the town."""
    person = customer.get("Person") or {}
    if person.get("Typ") == "juristisch":
        name = person.get("Firmenname") or ""
    else:
        name = ", ".join(filter(None, (person.get("Nachname"), person.get("Vorname"))))
    town = (customer.get("Hauptwohnsitz") or {}).get("Ort")
    return f"{name} ({town})" if town else name


def validate_contract(record: dict[str, Any], customer_exists) -> list[dict[str, str]]:
    """Messages for a complete contract record; ``customer_exists(nr)`` checks Kunde."""
    errors: list[dict[str, str]] = []
    for name in ("Status", "Gesellschaft"):
        value = record.get(name)
        if value in (None, ""):
            errors.append(_msg(name, f"{name} ist ein Pflichtfeld"))
        elif not isinstance(value, str):
            errors.append(_msg(name, f"{name} muss ein Text sein"))
    kunde = record.get("Kunde")
    if kunde in (None, ""):
        errors.append(_msg("Kunde", "Kunde ist ein Pflichtfeld"))
    elif not isinstance(kunde, str) or not customer_exists(kunde):
        errors.append(_msg("Kunde", f"Kunde {kunde} existiert nicht"))
    sparte = record.get("Sparte")
    if sparte in (None, ""):
        errors.append(_msg("Sparte", "Sparte ist ein Pflichtfeld"))
    elif not (isinstance(sparte, str) and _SPARTE.fullmatch(sparte)):
        errors.append(_msg("Sparte", "Sparte muss aus 3 Ziffern bestehen"))
    for name in ("Risiko", "Antragsnummer", "Versicherungsscheinnummer", "Vermittler"):
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            errors.append(_msg(name, f"{name} muss ein Text sein"))
    beitrag = record.get("Beitrag")
    if beitrag is not None:
        if not isinstance(beitrag, dict):
            errors.append(_msg("Beitrag", "Beitrag muss ein Objekt sein"))
        else:
            for name in ("Brutto", "Netto", "Steuer"):
                value = beitrag.get(name)
                if value is not None and not _is_number(value):
                    errors.append(_msg(f"Beitrag.{name}", f"Beitrag.{name} muss eine Zahl sein"))
            zahlweise = beitrag.get("Zahlweise")
            if zahlweise is not None and not isinstance(zahlweise, str):
                errors.append(_msg("Beitrag.Zahlweise", "Beitrag.Zahlweise muss ein Text sein"))
    laufzeit = record.get("Laufzeit")
    if laufzeit is not None:
        if not isinstance(laufzeit, dict):
            errors.append(_msg("Laufzeit", "Laufzeit muss ein Objekt sein"))
        else:
            valid = True
            for name in LAUFZEIT_FIELDS:
                value = laufzeit.get(name)
                if value not in (None, "") and not _is_iso_date(value):
                    valid = False
                    errors.append(_msg(f"Laufzeit.{name}", f"Laufzeit.{name} muss ein Datum im Format JJJJ-MM-TT sein"))
            beginn, ablauf = laufzeit.get("Beginn"), laufzeit.get("Ablauf")
            if valid and beginn and ablauf and ablauf < beginn:
                errors.append(_msg("Laufzeit.Ablauf", "Laufzeit.Ablauf liegt vor Laufzeit.Beginn"))
    return errors


def _unknown_fields(data: dict[str, Any], allowed: Iterable[str], read_only: Iterable[str]) -> list[dict[str, str]]:
    known = set(allowed) | set(read_only)
    errors = [_msg(name, f"Unbekanntes Feld: {name}") for name in data if name not in known]
    for parent, children in CONTRACT_NESTED.items():
        if parent in known and isinstance(data.get(parent), dict):
            errors += [
                _msg(f"{parent}.{name}", f"Unbekanntes Feld: {parent}.{name}")
                for name in data[parent]
                if name not in children
            ]
    return errors


def _merge(old: dict[str, Any], data: dict[str, Any], nested: Iterable[str] = ()) -> dict[str, Any]:
    merged = json_copy(old)
    for key, value in data.items():
        if key in nested and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(json_copy(value))
        else:
            merged[key] = json_copy(value)
    return merged


def _haystack(customer: dict[str, Any]) -> list[str]:
    person = customer.get("Person") or {}
    full_name = " ".join(filter(None, (person.get("Vorname"), person.get("Nachname"))))
    mails = [e.get("Value") for e in customer.get("Kontaktdaten") or [] if e.get("Typ") == "email"]
    return [(value or "").lower() for value in (full_name, person.get("Firmenname"), *mails, customer.get("Id"))]


def search_hit(customer: dict[str, Any]) -> dict[str, Any]:
    """A ``KundenSuchErgebnis``: Id, Text, Person, Hauptwohnsitz."""
    hit = {"Id": customer["Id"], "Text": display_text(customer), "Person": json_copy(customer.get("Person") or {})}
    if customer.get("Hauptwohnsitz"):
        hit["Hauptwohnsitz"] = json_copy(customer["Hauptwohnsitz"])
    return hit


# ---------------------------------------------------------------- the state
class AmeiseState:
    """Everything the simulated Ameise knows; every method is thread-safe."""

    def __init__(self, *, token_lifetime: int = 3600, rotate_refresh_tokens: bool = False) -> None:
        self._lock = threading.RLock()
        self.token_lifetime = token_lifetime
        self.rotate_refresh_tokens = rotate_refresh_tokens
        # Off: /oauth2/auth consents at once (the CLI's `connect ameise`); on: it shows a consent page first.
        self.consent_page = False
        self.oauth_clients: dict[str, str] = {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET}
        self.employees: dict[str, Employee] = {
            DEFAULT_EMPLOYEE_ID: Employee(DEFAULT_EMPLOYEE_ID, DEFAULT_VERMITTLER, "Max Makler", "max.makler@example.de"),
        }
        self.default_employee_id = DEFAULT_EMPLOYEE_ID
        self._codes: dict[str, AuthCode] = {}
        self._access: dict[str, AccessGrant] = {}
        self._refresh: dict[str, RefreshGrant] = {}
        self._init_data()

    def _init_data(self) -> None:
        self._customers: dict[str, dict[str, Any]] = {}
        # The search's index of mail=: lower-cased e-mail address -> Kundennummern, and each customer's addresses.
        self._mail_index: dict[str, set[str]] = {}
        self._mails_of: dict[str, frozenset[str]] = {}
        self._contracts: dict[str, dict[str, Any]] = {}
        self._next_kundennummer = FIRST_KUNDENNUMMER
        self._next_vertragsnummer = FIRST_VERTRAGSNUMMER
        self._next_kontakt = 1
        self._faults: deque[Fault] = deque()
        self._creates: Counter[str] = Counter()
        self._updates: Counter[str] = Counter()
        self._requests: deque[dict[str, Any]] = deque(maxlen=1000)

    # ------------------------------------------------------------ set-up
    def add_employee(self, employee_id: str, vermittler: str, name: str = "", email: str = "") -> None:
        """Register another employee who can connect (``login_hint`` picks them)."""
        with self._lock:
            self.employees[employee_id] = Employee(employee_id, vermittler, name or employee_id, email)

    def add_client(self, client_id: str, client_secret: str) -> None:
        """Register another OAuth client."""
        with self._lock:
            self.oauth_clients[client_id] = client_secret

    def reset(self, *, tokens: bool = False) -> None:
        """Forget customers, contracts, counters, faults and the request log (and tokens if asked)."""
        with self._lock:
            self._init_data()
            if tokens:
                self._codes.clear()
                self._access.clear()
                self._refresh.clear()

    # ------------------------------------------------------------ views for tests and the demo
    @property
    def customers(self) -> dict[str, dict[str, Any]]:
        """A copy of all customers by Kundennummer."""
        with self._lock:
            return copy.deepcopy(self._customers)

    @property
    def contracts(self) -> dict[str, dict[str, Any]]:
        """A copy of all contracts by Vertragsnummer."""
        with self._lock:
            return copy.deepcopy(self._contracts)

    @property
    def creates(self) -> dict[str, int]:
        """Creates through the API per entity: ``{"customers": n, "contracts": n}``."""
        with self._lock:
            return {"customers": self._creates["customers"], "contracts": self._creates["contracts"]}

    @property
    def updates(self) -> dict[str, int]:
        """Updates through the API per entity: ``{"customers": n, "contracts": n}``."""
        with self._lock:
            return {"customers": self._updates["customers"], "contracts": self._updates["contracts"]}

    @property
    def faults(self) -> list[dict[str, Any]]:
        """The pending faults, next first."""
        with self._lock:
            return [asdict(f) for f in self._faults]

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The last 1000 requests (not the admin API): method, path, status, request id."""
        with self._lock:
            return list(self._requests)

    def summary(self) -> dict[str, Any]:
        """Counts for ``GET /_sim/state``."""
        with self._lock:
            return {
                "customers": len(self._customers),
                "contracts": len(self._contracts),
                "creates": self.creates,
                "updates": self.updates,
                "faults": len(self._faults),
                "requests": len(self._requests),
                "access_tokens": len(self._access),
                "refresh_tokens": len(self._refresh),
                "token_lifetime": self.token_lifetime,
                "rotate_refresh_tokens": self.rotate_refresh_tokens,
            }

    def log_request(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(entry)

    # ------------------------------------------------------------ faults
    def add_fault(
        self,
        status: int | None = 500,
        count: int = 1,
        path_prefix: str | None = None,
        delay: float = 0.0,
        retry_after: float | None = None,
    ) -> None:
        """Make the next ``count`` matching requests answer ``status`` (None: only wait ``delay``).

        Without ``path_prefix`` only web-service calls match; a prefix matches the
        full path (``/oauth2/token``) or the path below ``<ma>/`` (``kunden``).
        """
        if status is not None and not (isinstance(status, int) and 400 <= status <= 599):
            raise ValueError(f"status must be 400..599 or None, not {status!r}")
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive whole number, not {count!r}")
        if delay < 0 or (retry_after is not None and retry_after < 0):
            raise ValueError("delay and retry_after must not be negative")
        with self._lock:
            self._faults.append(Fault(status, count, path_prefix, float(delay), retry_after))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, path: str) -> Fault | None:
        """The first pending fault matching ``path``, counted down by one."""
        relative = None
        if path.startswith(API_PREFIX + "/"):
            rest = path[len(API_PREFIX) + 1:]
            relative = rest.partition("/")[2]
        with self._lock:
            for fault in self._faults:
                if fault.path_prefix is None:
                    matches = relative is not None
                else:
                    prefix = fault.path_prefix
                    matches = path.startswith(prefix) or (
                        relative is not None and relative.startswith(prefix.lstrip("/"))
                    )
                if matches:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return Fault(fault.status, 1, fault.path_prefix, fault.delay, fault.retry_after)
        return None

    # ------------------------------------------------------------ OAuth2
    def issue_code(self, client_id: str, redirect_uri: str, employee_id: str, scope: str,
                   code_challenge: str = "", code_challenge_method: str = "") -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = AuthCode(client_id, redirect_uri, employee_id, scope, time.time() + CODE_LIFETIME,
                                         code_challenge, code_challenge_method if code_challenge else "")
        return code

    def redeem_code(self, code: str, client_id: str, redirect_uri: str, code_verifier: str = "") -> AuthCode | None:
        """The grant of a code, used up; None when unknown, used, expired, not this client's or its PKCE fails."""
        with self._lock:
            grant = self._codes.pop(code, None)
        if grant is None or grant.expires_at < time.time():
            return None
        if grant.client_id != client_id or grant.redirect_uri != redirect_uri:
            return None
        if not pkce_matches(grant.code_challenge, grant.code_challenge_method, code_verifier):
            return None
        return grant

    def issue_tokens(self, client_id: str, employee_id: str, scope: str, *, with_refresh: bool) -> dict[str, Any]:
        """A token response body; a refresh token only when asked."""
        access = secrets.token_urlsafe(32)
        with self._lock:
            lifetime = self.token_lifetime
            self._access[access] = AccessGrant(client_id, employee_id, scope, time.time() + lifetime)
            body: dict[str, Any] = {"access_token": access, "token_type": "bearer", "expires_in": lifetime, "scope": scope}
            if with_refresh:
                refresh = secrets.token_urlsafe(32)
                self._refresh[refresh] = RefreshGrant(client_id, employee_id, scope)
                body["refresh_token"] = refresh
        return body

    def refresh(self, refresh_token: str, client_id: str, scope: str | None) -> dict[str, Any]:
        """A token response for a refresh token; raises KeyError/ValueError when refused."""
        with self._lock:
            grant = self._refresh.get(refresh_token)
            if grant is None or grant.client_id != client_id:
                raise KeyError("refresh token is unknown, revoked or not this client's")
            granted = grant.scope
            if scope:
                if not set(scope.split()) <= set(grant.scope.split()):
                    raise ValueError("requested scope exceeds the original grant")
                granted = scope
            if self.rotate_refresh_tokens:
                del self._refresh[refresh_token]
            return self.issue_tokens(client_id, grant.employee_id, granted, with_refresh=self.rotate_refresh_tokens)

    def access_grant(self, access_token: str) -> AccessGrant | None:
        """The grant of a valid access token; None when unknown or expired."""
        with self._lock:
            grant = self._access.get(access_token)
        if grant is None or grant.expires_at <= time.time():
            return None
        return grant

    def revoke_refresh_token(self, refresh_token: str) -> bool:
        """Revoke one refresh token; True when it existed."""
        with self._lock:
            return self._refresh.pop(refresh_token, None) is not None

    def revoke_all(self, employee_id: str | None = None) -> None:
        """Revoke every access and refresh token (of one employee, if named)."""
        with self._lock:
            for store in (self._access, self._refresh):
                for token in [t for t, grant in store.items() if employee_id in (None, grant.employee_id)]:
                    del store[token]

    def expire_access_tokens(self) -> None:
        """Let every access token expire now (refresh tokens stay valid)."""
        with self._lock:
            for grant in self._access.values():
                grant.expires_at = 0.0

    @property
    def refresh_tokens(self) -> list[str]:
        """The valid refresh tokens."""
        with self._lock:
            return list(self._refresh)

    # ------------------------------------------------------------ customers
    def _vermittler_of(self, employee_id: str | None) -> str | None:
        employee = self.employees.get(employee_id) if employee_id else None
        return employee.vermittler if employee else None

    def _check_vermittler(self, record: dict[str, Any], employee_id: str | None) -> None:
        own = self._vermittler_of(employee_id)
        given = record.get("Vermittler")
        if own is not None and given not in (None, "") and str(given).strip() != own:
            raise ForeignVermittler(PAGE_FOREIGN_VERMITTLER)

    def _new_kundennummer(self) -> str:
        while str(self._next_kundennummer) in self._customers:
            self._next_kundennummer += 1
        number = str(self._next_kundennummer)
        self._next_kundennummer += 1
        return number

    def _new_vertragsnummer(self) -> str:
        while str(self._next_vertragsnummer) in self._contracts:
            self._next_vertragsnummer += 1
        number = str(self._next_vertragsnummer)
        self._next_vertragsnummer += 1
        return number

    def _new_contact(self, entry: dict[str, Any]) -> dict[str, Any]:
        number = str(self._next_kontakt)
        self._next_kontakt += 1
        return {"Id": number, **{name: entry[name] for name in KONTAKT_FIELDS if name in entry}}

    def _build_customer(self, data: dict[str, Any], employee_id: str | None) -> dict[str, Any]:
        check_customer_fields(data, CUSTOMER_FIELDS)
        record: dict[str, Any] = {name: json_copy(data[name]) for name in CUSTOMER_FIELDS if name in data}
        errors = validate_customer(record)
        if errors:
            raise ValidationFailed(errors)
        self._check_vermittler(record, employee_id)
        if not record.get("Vermittler") and self._vermittler_of(employee_id):
            record["Vermittler"] = self._vermittler_of(employee_id)
        record["Kontaktdaten"] = [self._new_contact(e) for e in record.get("Kontaktdaten") or []]
        return record

    def _stored(self, number: str, record: dict[str, Any], benutzername: str | None = None,
                geaendert: str | None = None) -> dict[str, Any]:
        """A customer in the order the service answers it."""
        stored = {"Id": number, "Anrede": record.get("Anrede"), "Person": record["Person"],
                  "Kontaktdaten": record.get("Kontaktdaten") or []}
        if record.get("Hauptwohnsitz"):
            stored["Hauptwohnsitz"] = record["Hauptwohnsitz"]
        stored["Vermittler"] = record.get("Vermittler")
        stored["Benutzername"] = benutzername or email_of(record) or number
        stored["GeaendertAm"] = geaendert or _now_iso()
        return stored

    def create_customer(self, data: dict[str, Any], employee_id: str | None = None) -> dict[str, str]:
        """Create a customer as ``employee_id``; answer ``{"Id", "Benutzername"}``."""
        with self._lock:
            record = self._build_customer(data, employee_id)
            number = self._new_kundennummer()
            self._customers[number] = self._stored(number, record)
            self._index_mails(number)
            self._creates["customers"] += 1
            return {"Id": number, "Benutzername": self._customers[number]["Benutzername"]}

    def _index_mails(self, kundennummer: str) -> None:
        """Bring the search's e-mail index in step with one customer (stored, changed or removed)."""
        customer = self._customers.get(kundennummer)
        mails = frozenset() if customer is None else frozenset(
            str(e.get("Value") or "").lower() for e in customer.get("Kontaktdaten") or [] if e.get("Typ") == "email")
        before = self._mails_of.get(kundennummer, frozenset())
        if mails == before:
            return
        for mail in before - mails:
            holders = self._mail_index[mail]
            holders.discard(kundennummer)
            if not holders:
                del self._mail_index[mail]
        for mail in mails - before:
            self._mail_index.setdefault(mail, set()).add(kundennummer)
        if mails:
            self._mails_of[kundennummer] = mails
        else:
            self._mails_of.pop(kundennummer, None)

    def _customer(self, kundennummer: str) -> dict[str, Any]:
        record = self._customers.get(kundennummer)
        if record is None:
            raise NotFound(kundennummer)
        return record

    def _touch(self, kundennummer: str) -> None:
        self._customers[kundennummer]["GeaendertAm"] = _now_iso()
        self._updates["customers"] += 1

    def update_customer(self, kundennummer: str, data: dict[str, Any], employee_id: str | None = None) -> dict[str, Any]:
        """Merge ``data`` (Anrede, Person one level deep, Vermittler) into a customer; answer the whole record."""
        with self._lock:
            old = self._customer(kundennummer)
            check_customer_fields(data, CUSTOMER_UPDATE_FIELDS)
            changes = {name: data[name] for name in CUSTOMER_UPDATE_FIELDS if name in data}
            merged = _merge(old, changes, nested=("Person",))
            errors = validate_customer(merged)
            if errors:
                raise ValidationFailed(errors)
            self._check_vermittler(changes, employee_id)
            self._customers[kundennummer] = merged
            self._index_mails(kundennummer)
            self._touch(kundennummer)
            return json_copy(merged)

    def addresses(self, kundennummer: str) -> list[dict[str, Any]]:
        """``GET kunden/{nr}/adressen``: the main address first (index 0), as ``{"Typ": "Hauptwohnsitz", ...}``."""
        with self._lock:
            main = self._customer(kundennummer).get("Hauptwohnsitz")
            return [{"Typ": "Hauptwohnsitz", **copy.deepcopy(main)}] if main else []

    def put_address(self, kundennummer: str, index: int, data: dict[str, Any]) -> dict[str, Any]:
        """``PUT kunden/{nr}/adressen/{index}``: only the main address (0) exists; the given fields replace it."""
        with self._lock:
            record = self._customer(kundennummer)
            if index != 0:
                raise NotFound(f"{kundennummer}/adressen/{index}")
            check_address_fields(data)
            address = {name: data[name] for name in ADRESSE_FIELDS if data.get(name) not in (None, "")}
            errors = validate_address(address)
            if errors:
                raise ValidationFailed(errors)
            record["Hauptwohnsitz"] = address
            self._touch(kundennummer)
            return {"Typ": "Hauptwohnsitz", **json_copy(address)}

    def contacts(self, kundennummer: str) -> list[dict[str, Any]]:
        """``GET kunden/{nr}/kontaktdaten``."""
        with self._lock:
            return copy.deepcopy(self._customer(kundennummer).get("Kontaktdaten") or [])

    def add_contact(self, kundennummer: str, data: dict[str, Any]) -> dict[str, str]:
        """``POST kunden/{nr}/kontaktdaten``: one more entry (also when one of its Typ and Kontext exists)."""
        with self._lock:
            record = self._customer(kundennummer)
            check_contact_fields(data)
            errors = validate_contact(data)
            if errors:
                raise ValidationFailed(errors)
            entry = self._new_contact(data)
            record.setdefault("Kontaktdaten", []).append(entry)
            self._index_mails(kundennummer)
            self._touch(kundennummer)
            return {"Id": entry["Id"]}

    def update_contact(self, kundennummer: str, contact_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """``PUT kunden/{nr}/kontaktdaten/{id}``: merge the given fields into one entry."""
        with self._lock:
            record = self._customer(kundennummer)
            check_contact_fields(data)
            for entry in record.get("Kontaktdaten") or []:
                if entry["Id"] == str(contact_id):
                    merged = {**entry, **{name: data[name] for name in KONTAKT_FIELDS if name in data}}
                    errors = validate_contact(merged)
                    if errors:
                        raise ValidationFailed(errors)
                    entry.update(merged)
                    self._index_mails(kundennummer)
                    self._touch(kundennummer)
                    return copy.deepcopy(entry)
            raise NotFound(f"{kundennummer}/kontaktdaten/{contact_id}")

    def edit_customer(self, kundennummer: str, data: dict[str, Any]) -> dict[str, Any]:
        """A user's edit in Ameise itself, in the shape a customer is read: Anrede, Person, Vermittler,
        Hauptwohnsitz (merged) and Kontaktdaten (each entry replaces the value of its Typ and Kontext, or is added)."""
        with self._lock:
            self._customer(kundennummer)
            check_customer_fields({k: v for k, v in data.items() if k != "Hauptwohnsitz"}, CUSTOMER_FIELDS)
            contacts = data.get("Kontaktdaten") or []
            errors = [message for entry in contacts for message in validate_contact(entry)]
            if errors:
                raise ValidationFailed(errors)
            if "Hauptwohnsitz" in data:
                address = {**(self._customers[kundennummer].get("Hauptwohnsitz") or {}), **data["Hauptwohnsitz"]}
                self.put_address(kundennummer, 0, address)
            self.update_customer(kundennummer, {k: v for k, v in data.items() if k in CUSTOMER_UPDATE_FIELDS})
            for entry in contacts:
                same = [c for c in self._customers[kundennummer]["Kontaktdaten"]
                        if (c.get("Typ"), c.get("Kontext")) == (entry.get("Typ"), entry.get("Kontext"))]
                if same:
                    self.update_contact(kundennummer, same[0]["Id"], entry)
                else:
                    self.add_contact(kundennummer, entry)
            return copy.deepcopy(self._customers[kundennummer])

    def get_customer(self, kundennummer: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._customers.get(kundennummer)
            return json_copy(record) if record is not None else None

    def customer_contracts(self, kundennummer: str) -> list[dict[str, Any]]:
        """The contracts of a customer, by Vertragsnummer; NotFound for an unknown customer."""
        with self._lock:
            if kundennummer not in self._customers:
                raise NotFound(kundennummer)
            return [copy.deepcopy(c) for _, c in sorted(self._contracts.items()) if c.get("Kunde") == kundennummer]

    def search_customers(
        self, filters: dict[str, Any] | None = None, *, offset: int = 0, size: int | None = None
    ) -> list[dict[str, Any]]:
        """A page of ``KundenSuchErgebnis`` hits (Id, Text, Person, Hauptwohnsitz) for ``q`` and ``mail``."""
        filters = filters or {}
        if not isinstance(filters, dict):
            raise ValidationFailed([_msg(None, "Der Suchauftrag muss ein JSON-Objekt sein")])
        errors = [_msg(key, f"Unbekannter Suchfilter: {key}") for key in filters if key not in SEARCH_FILTERS]
        errors += [
            _msg(key, f"Suchfilter {key} muss ein Text sein")
            for key, value in filters.items()
            if key in SEARCH_FILTERS and value is not None and not isinstance(value, (str, int))
        ]
        if errors:
            raise ValidationFailed(errors)
        wanted = {key: str(value).strip().lower() for key, value in filters.items() if value not in (None, "")}

        def matches(customer: dict[str, Any]) -> bool:
            if "mail" in wanted and not any(
                    e.get("Typ") == "email" and str(e.get("Value") or "").lower() == wanted["mail"]
                    for e in customer.get("Kontaktdaten") or []):
                return False
            return not ("q" in wanted and not any(wanted["q"] in text for text in _haystack(customer)))

        with self._lock:
            if "mail" in wanted:   # by the index: the customers with that address, in Kundennummer order
                candidates = [self._customers[nr] for nr in sorted(self._mail_index.get(wanted["mail"], ()))]
            else:
                candidates = [c for _, c in sorted(self._customers.items())]
            hits = [search_hit(c) for c in candidates if matches(c)]
        end = None if size is None else offset + size
        return hits[offset:end]

    # ------------------------------------------------------------ contracts
    def _build_contract(self, data: dict[str, Any], employee_id: str | None) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise ValidationFailed([_msg(None, "Der Inhalt muss ein JSON-Objekt sein")])
        errors = _unknown_fields(data, CONTRACT_FIELDS, CONTRACT_READ_ONLY)
        record = {name: copy.deepcopy(data[name]) for name in CONTRACT_FIELDS if name in data}
        errors += validate_contract(record, self._customers.__contains__)
        if errors:
            raise ValidationFailed(errors)
        self._check_vermittler(record, employee_id)
        if not record.get("Vermittler") and self._vermittler_of(employee_id):
            record["Vermittler"] = self._vermittler_of(employee_id)
        return record

    def create_contract(self, data: dict[str, Any], employee_id: str | None = None) -> dict[str, str]:
        """Create a contract as ``employee_id``; answer ``{"Id"}``."""
        with self._lock:
            record = self._build_contract(data, employee_id)
            number = self._new_vertragsnummer()
            self._contracts[number] = {"Id": number, **record, "GeaendertAm": _now_iso()}
            self._creates["contracts"] += 1
            return {"Id": number}

    def update_contract(self, vertragsnummer: str, data: dict[str, Any], employee_id: str | None = None) -> dict[str, Any]:
        """Merge a partial contract (Beitrag and Laufzeit one level deep); answer the whole record."""
        with self._lock:
            old = self._contracts.get(vertragsnummer)
            if old is None:
                raise NotFound(vertragsnummer)
            if not isinstance(data, dict):
                raise ValidationFailed([_msg(None, "Der Inhalt muss ein JSON-Objekt sein")])
            errors = _unknown_fields(data, CONTRACT_FIELDS, CONTRACT_READ_ONLY)
            changes = {name: data[name] for name in CONTRACT_FIELDS if name in data}
            merged = _merge(old, changes, nested=CONTRACT_NESTED)
            errors += validate_contract(merged, self._customers.__contains__)
            if errors:
                raise ValidationFailed(errors)
            self._check_vermittler(changes, employee_id)
            merged["GeaendertAm"] = _now_iso()
            self._contracts[vertragsnummer] = merged
            self._updates["contracts"] += 1
            return copy.deepcopy(merged)

    def get_contract(self, vertragsnummer: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._contracts.get(vertragsnummer)
            return copy.deepcopy(record) if record is not None else None

    # ------------------------------------------------------------ seeding (not counted as creates)
    def seed_customer(self, data: dict[str, Any], kundennummer: str | None = None) -> str:
        """Put a valid customer in place (replacing one with the same number); return its number.

        Takes the create body and, beside it, the main address as ``Hauptwohnsitz``.
        """
        with self._lock:
            address = data.get("Hauptwohnsitz")
            body = {k: v for k, v in data.items() if k not in (*CUSTOMER_READ_ONLY, "Hauptwohnsitz")}
            try:
                record = self._build_customer(body, None)
                if address is not None:
                    check_address_fields(address)
                    errors = validate_address(address)
                    if errors:
                        raise ValidationFailed(errors)
                    record["Hauptwohnsitz"] = {k: address[k] for k in ADRESSE_FIELDS if address.get(k) not in (None, "")}
            except (ValidationFailed, UnknownField) as exc:
                raise ValueError(f"invalid customer: {exc}") from exc
            number = str(kundennummer or data.get("Id") or self._new_kundennummer())
            if not re.fullmatch(r"\d{10}", number):
                raise ValueError(f"a Kundennummer has 10 digits, not {number!r}")
            self._customers[number] = self._stored(number, record, data.get("Benutzername"), data.get("GeaendertAm"))
            self._index_mails(number)
            return number

    def delete_customer(self, kundennummer: str) -> list[str]:
        """Remove a customer and its contracts (as when a broker drops them); return the contract numbers."""
        with self._lock:
            if self._customers.pop(kundennummer, None) is None:
                raise NotFound(kundennummer)
            self._index_mails(kundennummer)
            gone = [nr for nr, c in self._contracts.items() if c.get("Kunde") == kundennummer]
            for nr in gone:
                del self._contracts[nr]
            return gone

    def dailyup(self, hauptvermittler: str = "100200", day: date | None = None) -> tuple[str, bytes]:
        """The DailyUp delivery of the current data: (file name, ZIP bytes)."""
        from simulators.dailyup import delivery

        with self._lock:
            customers, contracts = copy.deepcopy(self._customers), copy.deepcopy(self._contracts)
        return delivery(customers, contracts, hauptvermittler=hauptvermittler, day=day)

    def seed_contract(self, data: dict[str, Any], vertragsnummer: str | None = None) -> str:
        """Put a valid contract in place (its Kunde must exist); return its number."""
        with self._lock:
            try:
                record = self._build_contract({k: v for k, v in data.items() if k not in CONTRACT_READ_ONLY}, None)
            except ValidationFailed as exc:
                raise ValueError(f"invalid contract: {exc}") from exc
            number = str(vertragsnummer or data.get("Id") or self._new_vertragsnummer())
            if not re.fullmatch(r"\d{7}", number):
                raise ValueError(f"a Vertragsnummer has 7 digits, not {number!r}")
            self._contracts[number] = {"Id": number, **record, "GeaendertAm": data.get("GeaendertAm") or _now_iso()}
            return number
