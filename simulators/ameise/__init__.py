"""Simulator of Ameise (blau direkt): the Dionera OAuth2 server and the employee web service.

Speaks the wire formats of Dionera's public employee web-service documentation,
quirks included:

* OAuth2 authorization-code flow at ``/oauth2/auth`` and ``/oauth2/token`` with
  client authentication by HTTP Basic only; ``offline`` in the scope yields a
  refresh token; a refresh answers no new refresh token unless
  :attr:`AmeiseState.rotate_refresh_tokens` is on; ``/userinfo`` names the
  employee (``sub``).  PKCE (RFC 7636, ``S256`` or ``plain``) as Dionera's
  OAuth2 server (Ory Hydra) supports it: a code issued with a ``code_challenge``
  is redeemed only with its ``code_verifier``, one issued without takes none.
  The authorize endpoint consents at once, or, with
  :attr:`AmeiseState.consent_page` on, shows a consent page (allow / deny) first.
* API under ``/service/bd/employee/1.0/rest/<ma>/``: Bearer token of that employee;
  401/403/404/500 answer HTML pages, validation errors a JSON list of messages,
  a foreign Vermittler the HTML page ``Error #400 - Fehlerhafte anfrage!`` that
  names no field, and custom request headers other than ``X-Dio-*`` are refused.
* ``POST kunden`` answers only ``{"Id", "Benutzername"}``, ``POST vertraege`` only
  ``{"Id"}``; Kundennummer and Vertragsnummer are the ids in the URLs.
* The customer is nested: ``Anrede`` a code (``"1"``), ``Person{Typ, Vorname,
  Nachname, Geburtsdatum, ...}``, ``Kontaktdaten: [{Kontext, Typ, Value}]``, the
  main address read as ``Hauptwohnsitz{Strasse, Postleitzahl, Ort, Land}`` and
  written through ``PUT kunden/<nr>/adressen/0``.  Search
  (``GET|POST kunden/_search``, ``q`` and ``mail``) answers a plain array of
  ``KundenSuchErgebnis`` (``Id``, ``Text``, ``Person``, ``Hauptwohnsitz``).
* An unknown field (the flat customer of old: ``Vorname``, ``PLZ``, ``Email``; a
  ``Hauptwohnsitz`` in a customer write) is refused with the 400 HTML page that
  names no field.

Stand-ins, where the reference is silent (plausible shapes, not vendor facts):

* Person fields: Typ ("natuerlich" | "juristisch"), Titel, Vorname, Nachname,
  Geburtsdatum (YYYY-MM-DD), Geschlecht, and for a legal person Firmenname
  (required) and Rechtsform.  Anrede is a code of 1 to 3 digits.  Contact entries:
  Typ email | telefon | mobil | fax, Kontext privat | geschaeftlich, Value; each
  gets an ``Id`` on read.  Id, Benutzername and GeaendertAm are read-only and
  ignored on input.  Benutzername is the first e-mail address, else the
  Kundennummer.  A customer or contract without Vermittler gets the employee's.
* ``POST kunden`` takes Anrede, Person, Kontaktdaten, Vermittler; ``PUT kunden/<nr>``
  takes Anrede, Person (merged one level deep) and Vermittler, contact data goes
  through ``POST kunden/<nr>/kontaktdaten`` (adds an entry, also a second one of
  the same Typ and Kontext) and ``PUT kunden/<nr>/kontaktdaten/<id>``; only the
  main address (index 0) exists under ``adressen``.
* Validation messages: ``[{"field": "Person.Nachname", "message": "..."}]``; a 400
  for a body that is no JSON object names no field.
* The Vermittler quirk applies to customers as well as contracts.
* ``PUT`` merges the given fields (contracts: Beitrag and Laufzeit one level
  deep), validates the result and answers 200 with the whole record.
* Search: ``Text`` is "Nachname, Vorname (Ort)" or the Firmenname; sorted by
  Kundennummer; ``from`` and ``size`` 1..100 (default 10); a filter other than
  ``q`` and ``mail`` is refused (400, JSON, naming it).  ``mail`` matches a whole
  e-mail address of the contact data, case-insensitive; ``q`` a part of the
  name, Firmenname, an e-mail address or the Kundennummer.
* Page titles of the HTML errors other than the two quoted in the reference.
* Any http(s) ``redirect_uri`` is accepted (a simulator cannot know where the
  service is deployed); the token request must repeat the same one.  A token
  lacking the scope ``ameise/mitarbeiterwebservice`` gets 403.  ``/userinfo``
  errors are JSON (it belongs to the OAuth2 server, not the web service).
* The ``X-Dio-`` header rule applies to the web service only; ``X-Forwarded-*``
  and ``X-Request-Id`` pass because proxies add them.

The state lives in an :class:`AmeiseState`, reachable from the app as
``app.config["AMEISE_STATE"]``.  Tests and the demo use its Python methods or
the unauthenticated admin API under ``/_sim`` (see :func:`create_ameise_app`).
The routes are the Flask Blueprint :data:`blueprint`; an app that registers it
keeps its state in ``app.config["AMEISE_STATE"]``.

Run alone: ``python -m simulators.ameise --port 8102 --demo``."""
from simulators.ameise.app import blueprint, create_ameise_app
from simulators.ameise.demo import seed_demo
from simulators.ameise.state import (
    API_PREFIX,
    DEFAULT_EMPLOYEE_ID,
    PAGE_FOREIGN_VERMITTLER,
    PAGE_TITLES,
    AmeiseState,
    ForeignVermittler,
    NotFound,
    UnknownField,
    ValidationFailed,
)

__all__ = ["API_PREFIX", "AmeiseState", "DEFAULT_EMPLOYEE_ID", "ForeignVermittler", "NotFound", "PAGE_FOREIGN_VERMITTLER", "PAGE_TITLES", "UnknownField", "ValidationFailed", "blueprint", "create_ameise_app", "seed_demo"]
