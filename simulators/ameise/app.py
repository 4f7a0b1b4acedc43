"""The HTTP face of the simulated Ameise: the Dionera OAuth2 server, the employee web service, the ``/_sim`` admin API."""
from __future__ import annotations

import argparse
import html
import time
from datetime import date
from typing import Any
from urllib.parse import unquote_plus, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Flask, Response, current_app, g, jsonify, redirect, request
from werkzeug.local import LocalProxy

from simulators.ameise.demo import seed_demo
from simulators.ameise.state import (
    API_PREFIX,
    DEFAULT_EMPLOYEE_ID,
    KNOWN_SCOPES,
    OFFLINE_SCOPES,
    PAGE_FOREIGN_VERMITTLER,
    PAGE_TITLES,
    PKCE_CHALLENGE,
    PKCE_METHODS,
    SCOPE_API,
    SEARCH_MAX_SIZE,
    AmeiseState,
    ForeignVermittler,
    NotFound,
    SimulatorError,
    UnknownField,
    ValidationFailed,
    _AdminError,
    _msg,
)
from simulators.flask_app import SimulatorFlask
from simulators.record_page import record_page


# ---------------------------------------------------------------- HTTP
def _html(status: int, title: str | None = None, detail: str = "") -> Response:
    title = title or PAGE_TITLES.get(status, f"Error #{status}")
    body = (
        "<!DOCTYPE html>\n<html lang=\"de\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title></head>\n<body><h1>{html.escape(title)}</h1>"
        + (f"<p>{html.escape(detail)}</p>" if detail else "")
        + "</body></html>\n"
    )
    return Response(body, status=status, content_type="text/html; charset=utf-8")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _oauth_error(status: int, error: str, description: str) -> Response:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if error == "invalid_client":
        headers["WWW-Authenticate"] = 'Basic realm="ameise"'
    return _json({"error": error, "error_description": description}, status, headers)


def _consent_page(grant: dict[str, str]) -> Response:
    """The consent screen of the OAuth2 server (when :attr:`AmeiseState.consent_page` is on)."""
    hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in grant.items())
    body = (
        "<!DOCTYPE html>\n<html lang=\"de\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<title>Zugriff erlauben</title></head>\n<body><h1>Zugriff erlauben</h1>"
        f"<p>Die Anwendung <strong>{html.escape(grant['client_id'])}</strong> möchte im Namen von "
        f"<strong>{html.escape(grant['employee_id'])}</strong> auf Folgendes zugreifen:</p>"
        f"<ul>{''.join(f'<li>{html.escape(s)}</li>' for s in grant['scope'].split())}</ul>"
        f'<form method="post" action="/oauth2/auth/consent">{hidden}'
        '<button type="submit" name="decision" value="allow">Erlauben</button> '
        '<button type="submit" name="decision" value="deny">Ablehnen</button></form>'
        "</body></html>\n"
    )
    return Response(body, status=200, content_type="text/html; charset=utf-8")


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, (parts.query, urlencode(params))))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _custom_header_refused(name: str) -> bool:
    lower = name.lower()
    if not lower.startswith("x-"):
        return False
    return not (lower.startswith("x-dio-") or lower.startswith("x-forwarded-") or lower == "x-request-id")


def _api_json_body() -> Any:
    """The request's JSON body; raises ValidationFailed when it is not JSON."""
    if not request.get_data():
        return {}
    body = request.get_json(force=True, silent=True)
    if body is None:
        raise ValidationFailed([_msg(None, "Der Inhalt ist kein gültiges JSON")])
    return body


# The routes of the simulated Ameise; the state is the app's (``app.config["AMEISE_STATE"]``).
blueprint = Blueprint("ameise", __name__)
state: AmeiseState = LocalProxy(lambda: current_app.config["AMEISE_STATE"])  # type: ignore[assignment]


# ------------------------------------------------------------ the broker portal's record pages
@blueprint.get("/maklerportal/")
def portal_record() -> Response:
    """The portal's page of a customer (``?show=kunde&kunde=``) or contract (``?show=vertrag&vertrag=``)."""
    show = request.args.get("show", "")
    number = request.args.get(show, "") if show in ("kunde", "vertrag") else ""
    if not number:
        return _html(404)
    record = state.get_customer(number) if show == "kunde" else state.get_contract(number)
    return record_page("Ameise", f"{'Kunde' if show == 'kunde' else 'Vertrag'} {number}", record)


# ------------------------------------------------------------ gates
def _state() -> AmeiseState:
    """The state of the app serving the request, looked up once (each use of ``state`` looks it up anew)."""
    return current_app.config["AMEISE_STATE"]


def _refused_headers(environ: dict[str, Any]) -> list[str]:
    """The custom request headers the web service refuses, named as ``request.headers`` names them.

    The environ is looked at first (``HTTP_X_DIO_REQUEST_ID`` is the header ``X-Dio-Request-Id``); the
    names are built only when one of them is refused.
    """
    for key in environ:
        if key[:7].upper() == "HTTP_X_" and _custom_header_refused(key[5:].replace("_", "-")):
            return [name for name in request.headers.keys() if _custom_header_refused(name)]
    return []


@blueprint.before_app_request
def _gate():
    path = request.path
    g.employee_id = None
    if path.startswith("/_sim"):
        return None
    current = _state()
    fault = current.take_fault(path)
    if fault is not None:
        if fault.delay:
            # A slow server has the whole request before it takes its time: it still acts on it
            # when the caller has given up (or died) meanwhile.
            request.get_data(cache=True)
            time.sleep(fault.delay)
        if fault.status is not None:
            response = _html(fault.status)
            if fault.retry_after is not None:
                seconds = float(fault.retry_after)
                response.headers["Retry-After"] = str(int(seconds)) if seconds.is_integer() else str(seconds)
            return response
    if not path.startswith(API_PREFIX + "/"):
        return None
    environ = request.environ
    refused = _refused_headers(environ)
    if refused:
        return _html(400, PAGE_FOREIGN_VERMITTLER, "Unzulässiger Header: " + ", ".join(refused))
    # what request.headers.get("Authorization", "") reads
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    grant = current.access_grant(token.strip()) if scheme.lower() == "bearer" else None
    if grant is None:
        return _html(401)
    ma = path[len(API_PREFIX) + 1:].partition("/")[0]
    if grant.employee_id != ma or SCOPE_API not in grant.scope.split():
        return _html(403)
    g.employee_id = grant.employee_id
    return None

@blueprint.after_app_request
def _log(response: Response) -> Response:
    path = request.path
    if not path.startswith("/_sim"):
        _state().log_request(
            {
                "method": request.method,
                "path": path,
                "query": request.query_string.decode("latin-1"),
                "status": response.status_code,
                "request_id": request.environ.get("HTTP_X_DIO_REQUEST_ID"),   # request.headers.get("X-Dio-Request-Id")
                "employee_id": g.get("employee_id"),
                "at": time.time(),
            }
        )
    return response

@blueprint.app_errorhandler(SimulatorError)
def _domain_error(exc: SimulatorError):
    if isinstance(exc, ValidationFailed):
        return _json(exc.messages, 400)
    if isinstance(exc, (ForeignVermittler, UnknownField)):
        return _html(400, PAGE_FOREIGN_VERMITTLER)
    return _html(404)

@blueprint.app_errorhandler(404)
@blueprint.app_errorhandler(405)
def _http_error(exc):
    if request.path.startswith("/_sim"):
        return _json({"error": exc.name}, exc.code)
    return _html(exc.code)

@blueprint.app_errorhandler(500)
def _server_error(exc):
    return _html(500)

# ------------------------------------------------------------ OAuth2
@blueprint.get("/oauth2/auth")
def oauth_authorize():
    args = request.args
    client_id = args.get("client_id", "")
    redirect_uri = args.get("redirect_uri", "")
    if client_id not in state.oauth_clients:
        return _oauth_error(400, "invalid_client", "unknown client_id")
    if urlsplit(redirect_uri).scheme not in ("http", "https"):
        return _oauth_error(400, "invalid_request", "redirect_uri must be an http(s) URL")
    back = {"state": args["state"]} if "state" in args else {}
    if args.get("response_type") != "code":
        return redirect(_with_query(redirect_uri, {"error": "unsupported_response_type", **back}), 302)
    scope = " ".join(args.get("scope", "").split())
    unknown = [s for s in scope.split() if s not in KNOWN_SCOPES]
    if unknown:
        return redirect(_with_query(redirect_uri, {"error": "invalid_scope", "error_description": "unknown scope " + " ".join(unknown), **back}), 302)
    employee_id = args.get("login_hint") or state.default_employee_id
    if employee_id not in state.employees:
        return redirect(_with_query(redirect_uri, {"error": "access_denied", "error_description": "unknown employee", **back}), 302)
    challenge, method = args.get("code_challenge", ""), args.get("code_challenge_method", "")
    if challenge and (method or "plain") not in PKCE_METHODS:
        return redirect(_with_query(redirect_uri, {"error": "invalid_request", "error_description": "code_challenge_method must be S256 or plain", **back}), 302)
    if challenge and not PKCE_CHALLENGE.fullmatch(challenge):
        return redirect(_with_query(redirect_uri, {"error": "invalid_request", "error_description": "code_challenge is malformed", **back}), 302)
    if method and not challenge:
        return redirect(_with_query(redirect_uri, {"error": "invalid_request", "error_description": "code_challenge_method without code_challenge", **back}), 302)
    grant = {"client_id": client_id, "redirect_uri": redirect_uri, "employee_id": employee_id, "scope": scope,
             "code_challenge": challenge, "code_challenge_method": method or "plain", **back}
    if state.consent_page:
        return _consent_page(grant)
    code = state.issue_code(client_id, redirect_uri, employee_id, scope, challenge, method or "plain")
    return redirect(_with_query(redirect_uri, {"code": code, **back, "scope": scope}), 302)


@blueprint.post("/oauth2/auth/consent")
def oauth_consent():
    form = request.form
    client_id, redirect_uri = form.get("client_id", ""), form.get("redirect_uri", "")
    if client_id not in state.oauth_clients or urlsplit(redirect_uri).scheme not in ("http", "https"):
        return _oauth_error(400, "invalid_request", "consent for an unknown client or redirect_uri")
    back = {"state": form["state"]} if "state" in form else {}
    if form.get("decision") != "allow":
        return redirect(_with_query(redirect_uri, {"error": "access_denied",
                                                   "error_description": "the user denied the request", **back}), 302)
    employee_id = form.get("employee_id", "")
    if employee_id not in state.employees:
        return redirect(_with_query(redirect_uri, {"error": "access_denied", "error_description": "unknown employee", **back}), 302)
    scope = form.get("scope", "")
    code = state.issue_code(client_id, redirect_uri, employee_id, scope, form.get("code_challenge", ""),
                            form.get("code_challenge_method", "plain"))
    return redirect(_with_query(redirect_uri, {"code": code, **back, "scope": scope}), 302)

@blueprint.post("/oauth2/token")
def oauth_token():
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return _oauth_error(401, "invalid_client", "client authentication by HTTP Basic is required")
    # RFC 6749 2.3.1: Basic credentials are form-encoded first.
    client_id, secret = unquote_plus(auth.username or ""), unquote_plus(auth.password or "")
    if state.oauth_clients.get(client_id) != secret:
        return _oauth_error(401, "invalid_client", "unknown client or wrong secret")
    form = request.form
    grant_type = form.get("grant_type")
    if grant_type == "authorization_code":
        grant = state.redeem_code(form.get("code", ""), client_id, form.get("redirect_uri", ""),
                                  form.get("code_verifier", ""))
        if grant is None:
            return _oauth_error(400, "invalid_grant", "authorization code is invalid, expired, used, issued for another redirect_uri, or its code_verifier does not match")
        with_refresh = any(s in grant.scope.split() for s in OFFLINE_SCOPES)
        body = state.issue_tokens(client_id, grant.employee_id, grant.scope, with_refresh=with_refresh)
    elif grant_type == "refresh_token":
        try:
            body = state.refresh(form.get("refresh_token", ""), client_id, form.get("scope"))
        except KeyError:
            return _oauth_error(400, "invalid_grant", "refresh token is invalid, revoked or issued to another client")
        except ValueError as exc:
            return _oauth_error(400, "invalid_scope", str(exc))
    elif not grant_type:
        return _oauth_error(400, "invalid_request", "grant_type is missing")
    else:
        return _oauth_error(400, "unsupported_grant_type", f"grant_type {grant_type} is not supported")
    return _json(body, 200, {"Cache-Control": "no-store", "Pragma": "no-cache"})

@blueprint.route("/userinfo", methods=["GET", "POST"])
def userinfo():
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    grant = state.access_grant(token.strip()) if scheme.lower() == "bearer" else None
    if grant is None:
        return _json(
            {"error": "invalid_token", "error_description": "access token is invalid or expired"},
            401, {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    employee = state.employees[grant.employee_id]
    return _json({"sub": employee.id, "name": employee.name, "email": employee.email})

# ------------------------------------------------------------ customers
base = API_PREFIX + "/<ma>"

@blueprint.post(base + "/kunden")
def kunden_create(ma):
    return _json(_state().create_customer(_api_json_body(), g.employee_id), 201)

def _page_args() -> tuple[int, int]:
    errors = []
    values = {}
    for name, default in (("from", 0), ("size", 10)):
        raw = request.args.get(name, "")
        try:
            values[name] = int(raw) if raw != "" else default
        except ValueError:
            errors.append(_msg(name, f"{name} muss eine Zahl sein"))
    if not errors and values["from"] < 0:
        errors.append(_msg("from", "from darf nicht negativ sein"))
    if not errors and not 1 <= values["size"] <= SEARCH_MAX_SIZE:
        errors.append(_msg("size", f"size muss zwischen 1 und {SEARCH_MAX_SIZE} liegen"))
    if errors:
        raise ValidationFailed(errors)
    return values["from"], values["size"]

def _search(filters: Any) -> Response:
    offset, size = _page_args()
    return _json(state.search_customers(filters, offset=offset, size=size))


@blueprint.get(base + "/kunden/_search")
def kunden_search_get(ma):
    return _search({key: value for key, value in request.args.items() if key not in ("from", "size")})


@blueprint.post(base + "/kunden/_search")
def kunden_search_post(ma):
    body = _api_json_body()
    if not isinstance(body, dict):
        raise ValidationFailed([_msg(None, "Der Suchauftrag muss ein JSON-Objekt sein")])
    return _search({**body, **{key: request.args[key] for key in ("q", "mail") if key in request.args}})


def _customer_or_404(nr: str) -> dict[str, Any]:
    record = state.get_customer(nr)
    if record is None:
        raise NotFound(nr)
    return record

@blueprint.get(base + "/kunden/<nr>")
def kunden_get(ma, nr):
    return _json(_customer_or_404(nr))

@blueprint.put(base + "/kunden/<nr>")
def kunden_put(ma, nr):
    return _json(state.update_customer(nr, _api_json_body(), g.employee_id))

@blueprint.get(base + "/kunden/<nr>/vertraege")
def kunden_vertraege(ma, nr):
    return _json(state.customer_contracts(nr))

@blueprint.get(base + "/kunden/<nr>/adressen")
def kunden_adressen(ma, nr):
    return _json(state.addresses(nr))


@blueprint.put(base + "/kunden/<nr>/adressen/<int:index>")
def kunden_adresse_put(ma, nr, index):
    return _json(_state().put_address(nr, index, _api_json_body()))


@blueprint.get(base + "/kunden/<nr>/kontaktdaten")
def kunden_kontaktdaten(ma, nr):
    return _json(state.contacts(nr))


@blueprint.post(base + "/kunden/<nr>/kontaktdaten")
def kunden_kontaktdaten_add(ma, nr):
    return _json(state.add_contact(nr, _api_json_body()), 201)


@blueprint.put(base + "/kunden/<nr>/kontaktdaten/<contact_id>")
def kunden_kontaktdaten_put(ma, nr, contact_id):
    return _json(state.update_contact(nr, contact_id, _api_json_body()))


@blueprint.get(base + "/kunden/<nr>/dokumente")
def kunden_dokumente(ma, nr):
    _customer_or_404(nr)
    return _json([])

# ------------------------------------------------------------ contracts
@blueprint.post(base + "/vertraege")
def vertraege_create(ma):
    return _json(state.create_contract(_api_json_body(), g.employee_id), 201)

@blueprint.get(base + "/vertraege/<nr>")
def vertraege_get(ma, nr):
    record = state.get_contract(nr)
    if record is None:
        raise NotFound(nr)
    return _json(record)

@blueprint.put(base + "/vertraege/<nr>")
def vertraege_put(ma, nr):
    return _json(state.update_contract(nr, _api_json_body(), g.employee_id))

# ------------------------------------------------------------ admin API
def _admin_body() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True) if request.get_data() else {}
    if not isinstance(body, dict):
        raise _AdminError("the body must be a JSON object")
    return body

@blueprint.app_errorhandler(_AdminError)
def _admin_error(exc: _AdminError):
    return _json({"error": str(exc)}, 400)

@blueprint.get("/_sim/state")
def sim_state():
    return _json(state.summary())

@blueprint.get("/_sim/kunden")
def sim_kunden():
    return _json(list(state.customers.values()))

@blueprint.get("/_sim/kunden/<nr>")
def sim_kunde(nr):
    record = state.get_customer(nr)
    return _json(record) if record is not None else _json({"error": f"no customer {nr}"}, 404)

@blueprint.patch("/_sim/kunden/<nr>")
def sim_kunde_edit(nr):
    """A user edits the customer in Ameise itself (the change reaches the CRM with the next DailyUp)."""
    try:
        return _json(state.edit_customer(nr, _admin_body()))
    except NotFound:
        return _json({"error": f"no customer {nr}"}, 404)
    except ValidationFailed as exc:
        return _json({"error": "invalid", "messages": exc.messages}, 400)
    except UnknownField as exc:
        return _json({"error": "invalid", "messages": [{"message": f"Unbekanntes Feld: {exc}"}]}, 400)

@blueprint.delete("/_sim/kunden/<nr>")
def sim_kunde_delete(nr):
    try:
        return _json({"deleted": nr, "vertraege": state.delete_customer(nr)})
    except NotFound:
        return _json({"error": f"no customer {nr}"}, 404)

@blueprint.get("/_sim/dailyup")
def sim_dailyup():
    """Today's DailyUp delivery as a ZIP (``?hauptvermittler=``, ``?date=YYYY-MM-DD``)."""
    try:
        day = date.fromisoformat(request.args["date"]) if request.args.get("date") else None
    except ValueError:
        raise _AdminError("date must be YYYY-MM-DD") from None
    name, data = state.dailyup(request.args.get("hauptvermittler", "100200"), day)
    return Response(data, mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})

@blueprint.get("/_sim/vertraege")
def sim_vertraege():
    return _json(list(state.contracts.values()))

@blueprint.get("/_sim/vertraege/<nr>")
def sim_vertrag(nr):
    record = state.get_contract(nr)
    return _json(record) if record is not None else _json({"error": f"no contract {nr}"}, 404)

@blueprint.get("/_sim/requests")
def sim_requests():
    return _json(state.requests)

@blueprint.post("/_sim/seed")
def sim_seed():
    body = _admin_body()
    result: dict[str, list[str]] = {"kunden": [], "vertraege": []}
    if body.get("demo"):
        kunde, vertrag = seed_demo(state)
        result["kunden"].append(kunde)
        result["vertraege"].append(vertrag)
    for key, seed in (("kunden", state.seed_customer), ("vertraege", state.seed_contract)):
        items = body.get(key, [])
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise _AdminError(f"{key} must be a list of JSON objects")
        for item in items:
            try:
                result[key].append(seed(item))
            except ValueError as exc:
                raise _AdminError(str(exc)) from exc
    return _json(result, 201)

@blueprint.post("/_sim/reset")
def sim_reset():
    state.reset(tokens=bool(_admin_body().get("tokens")))
    return _json(state.summary())

@blueprint.post("/_sim/faults")
def sim_faults_add():
    body = _admin_body()
    unknown = set(body) - {"status", "count", "path_prefix", "delay", "retry_after"}
    if unknown:
        raise _AdminError("unknown keys: " + ", ".join(sorted(unknown)))
    try:
        state.add_fault(
            status=body.get("status", 500),
            count=body.get("count", 1),
            path_prefix=body.get("path_prefix"),
            delay=float(body.get("delay", 0.0)),
            retry_after=None if body.get("retry_after") is None else float(body["retry_after"]),
        )
    except (TypeError, ValueError) as exc:
        raise _AdminError(str(exc)) from exc
    return _json({"faults": state.faults}, 201)

@blueprint.delete("/_sim/faults")
def sim_faults_clear():
    state.clear_faults()
    return _json({"faults": []})

@blueprint.post("/_sim/config")
def sim_config():
    body = _admin_body()
    if "token_lifetime" in body:
        value = body["token_lifetime"]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise _AdminError("token_lifetime must be a positive whole number of seconds")
        state.token_lifetime = value
    if "consent_page" in body:
        if not isinstance(body["consent_page"], bool):
            raise _AdminError("consent_page must be true or false")
        state.consent_page = body["consent_page"]
    if "rotate_refresh_tokens" in body:
        if not isinstance(body["rotate_refresh_tokens"], bool):
            raise _AdminError("rotate_refresh_tokens must be true or false")
        state.rotate_refresh_tokens = body["rotate_refresh_tokens"]
    return _json(state.summary())

@blueprint.post("/_sim/revoke")
def sim_revoke():
    body = _admin_body()
    if body.get("refresh_token"):
        return _json({"revoked": state.revoke_refresh_token(str(body["refresh_token"]))})
    state.revoke_all(body.get("employee_id"))
    return _json({"revoked": True})





def create_ameise_app(state: AmeiseState | None = None) -> Flask:
    """Build the simulator app around :data:`blueprint`; its state is ``app.config["AMEISE_STATE"]``.

    Admin API (no auth): ``GET /_sim/state``, ``GET /_sim/kunden[/<nr>]``,
    ``GET /_sim/vertraege[/<id>]``, ``GET /_sim/requests``, ``POST /_sim/seed``,
    ``PATCH|DELETE /_sim/kunden/<nr>`` (a user's edit in Ameise), ``GET /_sim/dailyup``
    (today's DailyUp delivery of the current data, as a ZIP),
    (``{"demo": true, "kunden": [...], "vertraege": [...]}``, items may carry Id),
    ``POST /_sim/reset`` (``{"tokens": true}`` also drops tokens),
    ``POST|DELETE /_sim/faults`` (``{"status", "count", "path_prefix", "delay",
    "retry_after"}``), ``POST /_sim/config`` (``token_lifetime``,
    ``rotate_refresh_tokens``, ``consent_page``), ``POST /_sim/revoke`` (``{"refresh_token"}`` or all).
    """
    app = SimulatorFlask(__name__, static_folder=None)
    app.config["AMEISE_STATE"] = state or AmeiseState()
    app.json.sort_keys = False  # keep fields in Ameise's order
    app.json.ensure_ascii = False
    app.register_blueprint(blueprint)
    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the simulator until interrupted."""
    from simulators.server import ServerThread

    parser = argparse.ArgumentParser(description="Simulated Ameise (OAuth2 server and employee web service)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8102)
    parser.add_argument("--demo", action="store_true", help="seed Erika Mustermann and her contract")
    parser.add_argument("--token-lifetime", type=int, default=3600, help="access token lifetime in seconds")
    args = parser.parse_args(argv)
    state = AmeiseState(token_lifetime=args.token_lifetime)
    if args.demo:
        seed_demo(state)
    server = ServerThread(create_ameise_app(state), host=args.host, port=args.port).start()
    print(f"Ameise simulator on {server.url}  (API {server.url}{API_PREFIX}/{DEFAULT_EMPLOYEE_ID}/)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
