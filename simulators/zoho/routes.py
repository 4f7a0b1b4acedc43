"""The routes of the simulated Zoho CRM as a Flask blueprint: OAuth server, records API, search, the ``/_sim`` admin API.

The blueprint works on the :class:`ZohoState` in ``current_app.config["ZOHO_STATE"]``
(:func:`simulators.zoho.app.create_zoho_app` puts it there).
"""
from __future__ import annotations

import copy
import json
import logging
import math
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, request
from werkzeug.local import LocalProxy

from simulators.record_page import record_page
from simulators.zoho.criteria import CriteriaError
from simulators.zoho.demo import seed_demo
from simulators.zoho.state import (
    API_VERSIONS,
    AUTH_ERRORS,
    FAULT_BODIES,
    MAX_PER_PAGE,
    MAX_RECORDS_PER_WRITE,
    MISSING_RECORD_STYLES,
    SETTABLE,
    Fault,
    SimulatorInputError,
    ZohoState,
    _error,
    org_timezone,
    zoho_time,
)

log = logging.getLogger(__name__)

zoho_api = Blueprint("zoho", __name__)
# the state of the app serving the request
state: ZohoState = LocalProxy(lambda: current_app.config["ZOHO_STATE"])  # type: ignore[assignment]


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, headers=headers or {},
                    content_type="application/json;charset=UTF-8")


def _load_json_body() -> tuple[Any, Response | None]:
    raw = request.get_data(cache=True)
    try:
        return json.loads(raw.decode("utf-8")), None
    except (UnicodeDecodeError, ValueError):
        return None, _json(_error("INVALID_DATA", "the request body is not valid JSON", {"expected_data_type": "json"}),
                           400)


def _state() -> ZohoState:
    """The state of the app serving the request, looked up once (each use of ``state`` looks it up anew)."""
    return current_app.config["ZOHO_STATE"]


# The request's host URL by the parts of the WSGI environ it is made of: every API call notes it, and
# werkzeug builds it anew each time (with an IRI round trip).
_BASE_URLS: dict[tuple, str] = {}


def base_url() -> str:
    environ = request.environ
    key = (environ.get("wsgi.url_scheme"), environ.get("HTTP_HOST"), environ.get("SERVER_NAME"),
           environ.get("SERVER_PORT"), environ.get("SCRIPT_NAME"))
    url = _BASE_URLS.get(key)
    if url is None:
        url = request.host_url.rstrip("/")
        if len(_BASE_URLS) > 256:
            _BASE_URLS.clear()
        _BASE_URLS[key] = url
    return url


def _is_api_path(path: str) -> bool:
    if path.startswith("/crm/"):
        return not path.startswith("/crm/tab/")
    return path.startswith("/oauth/")


def api_path() -> bool:
    """A call of the API or the OAuth server (counted, gated, billed); not a record's web page."""
    return _is_api_path(request.path)


@zoho_api.before_app_request
def guard() -> Response | None:
    path = request.path
    if not _is_api_path(path):
        return None
    current = _state()
    entered, fault = current.begin_call(path)
    if not entered:
        return _json(FAULT_BODIES[429], 429)
    g.entered = path.startswith("/crm/")   # only API calls count as in flight (begin_call)
    if fault is not None:
        if fault.delay:
            time.sleep(fault.delay)
        if fault.status is not None:
            return _fault_response(fault)
    if path.startswith("/crm/"):
        # what request.headers.get("Authorization", "") reads
        scheme, _, token = request.environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if not current.authorize_call(base_url(), token.strip() if scheme == "Zoho-oauthtoken" else None):
            code = current.auth_error_code
            return _json(_error(code, AUTH_ERRORS.get(code, "invalid oauth token")), 401)
        g.credits = 1
    return None


@zoho_api.after_app_request
def bill(response: Response) -> Response:
    credits = g.get("credits")
    if credits is not None:
        _state().charge(credits)
    return response


@zoho_api.teardown_app_request
def leave(_exc) -> None:
    if g.pop("entered", False):
        _state().leave_call()


@zoho_api.app_errorhandler(404)
def not_found(_exc) -> Response:
    if request.path.startswith("/crm/"):
        return _json(_error("INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one"), 404)
    return _json({"error": "not found", "path": request.path}, 404)


@zoho_api.app_errorhandler(405)
def bad_method(_exc) -> Response:
    if request.path.startswith("/crm/"):
        return _json(_error("INVALID_REQUEST_METHOD", "The http request method type is not a valid one"), 405)
    return _json({"error": "method not allowed"}, 405)


def module_problem(version: str, module: str, current: ZohoState | None = None) -> Response | None:
    if version not in API_VERSIONS:
        return _json(_error("INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one"), 404)
    if not (current or _state()).has_module(module):
        return _json(_error("INVALID_MODULE", "the module name given seems to be invalid"), 400)
    return None

# ------------------------------------------------------------ OAuth

@zoho_api.post("/oauth/v2/token")
def token() -> Response:
    params = {k: v for k, v in request.values.items()}  # Zoho's docs send them as query parameters
    status, body = state.token_grant(params, base_url())
    return _json(body, status)


@zoho_api.post("/oauth/v2/token/revoke")
def revoke() -> Response:
    state.revoke_refresh_token(request.values.get("token", ""))
    return _json({"status": "success"})


@zoho_api.get("/oauth/v2/auth")
def authorize() -> Response:
    params = request.args.to_dict()
    if params.get("response_type", "code") != "code":
        return _json({"error": "unsupported_response_type"}, 400)
    try:
        code = state.authorize(params)
    except KeyError as exc:
        return _json({"error": exc.args[0]}, 400)
    query = {"code": code, "location": "eu", "accounts-server": base_url()}
    if "state" in params:
        query = {"state": params["state"], **query}
    target = params["redirect_uri"]
    target += ("&" if "?" in target else "?") + urlencode(query)
    return Response(status=302, headers={"Location": target})

# ------------------------------------------------------------ records

def missing_record() -> Response:
    style = state.missing_record_style
    if style == "empty":
        return _json({"data": []})
    if style in ("400", "404"):
        return _json(_error("INVALID_DATA", "the related id given seems to be invalid", {}), int(style))
    return Response(status=204)


@zoho_api.get("/crm/<version>/<module>/<record_id>")
def get_record(version: str, module: str, record_id: str) -> Response:
    current = _state()
    problem = module_problem(version, module, current)
    if problem:
        return problem
    record = current.get(module, record_id)
    if record is None:
        return missing_record()
    return _json({"data": [record]})


@zoho_api.get("/crm/<version>/<module>")
def list_records(version: str, module: str) -> Response:
    problem = module_problem(version, module)
    if problem:
        return problem
    fields = request.args.get("fields")
    if not fields:  # v7 and later insist on naming the fields
        return _json(_error("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                            {"param": "fields"}), 400)
    page, per_page, paging_error = paging()
    if paging_error:
        return paging_error
    since = None
    if request.headers.get("If-Modified-Since"):
        try:
            since = datetime.fromisoformat(request.headers["If-Modified-Since"].strip().replace("Z", "+00:00"))
        except ValueError:
            return _json(_error("INVALID_DATA", "invalid data", {"header": "If-Modified-Since"}), 400)
        if since.tzinfo is None:
            since = since.replace(tzinfo=org_timezone())
    names = [f.strip() for f in fields.split(",") if f.strip()]
    status, body = state.list_page(module, names, page=page, per_page=per_page,
                                   page_token=request.args.get("page_token"), modified_since=since)
    return _json(body, status) if body is not None else Response(status=status)


@zoho_api.get("/crm/<version>/<module>/deleted")
def deleted_records(version: str, module: str) -> Response:
    # https://www.zoho.com/crm/developer/docs/api/v7/get-deleted-records.html: ?type=all|recycle|permanent
    problem = module_problem(version, module)
    if problem:
        return problem
    kind = request.args.get("type", "all")
    if kind not in ("all", "recycle", "permanent"):
        return _json(_error("INVALID_DATA", "invalid data", {"param": "type"}), 400)
    page, per_page, paging_error = paging()
    if paging_error:
        return paging_error
    return page_of(state.deleted(module, kind), page, per_page)


def paging() -> tuple[int, int, Response | None]:
    try:
        page = int(request.args.get("page", "1"))
        per_page = int(request.args.get("per_page", str(MAX_PER_PAGE)))
    except ValueError:
        return 0, 0, _json(_error("INVALID_DATA", "invalid data", {"param": "page/per_page"}), 400)
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        return 0, 0, _json(_error("INVALID_DATA", "invalid data",
                                  {"param": "per_page" if page >= 1 else "page", "maximum": MAX_PER_PAGE}), 400)
    return page, per_page, None


def page_of(rows: list[dict[str, Any]], page: int, per_page: int) -> Response:
    chunk = rows[(page - 1) * per_page: page * per_page]
    if not chunk:
        return Response(status=204)
    return _json({"data": chunk, "info": {"per_page": per_page, "count": len(chunk), "page": page,
                                          "more_records": len(rows) > page * per_page}})


def write(version: str, module: str, operation: str, path_id: str | None = None) -> Response:
    current = _state()
    problem = module_problem(version, module, current)
    if problem:
        return problem
    body, bad = _load_json_body()
    if bad:
        return bad
    if not isinstance(body, dict):
        return _json(_error("INVALID_DATA", "invalid data", {"expected_data_type": "jsonobject"}), 400)
    data = body.get("data")
    if data is None:
        return _json(_error("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                            {"param": "data"}), 400)
    if not isinstance(data, list) or not data:
        return _json(_error("INVALID_DATA", "invalid data", {"expected_data_type": "jsonarray", "api_name": "data"}),
                     400)
    if len(data) > MAX_RECORDS_PER_WRITE:
        return _json(_error("LIMIT_EXCEEDED", f"Only {MAX_RECORDS_PER_WRITE} records can be written in one call",
                            {"limit": MAX_RECORDS_PER_WRITE, "api_name": "data"}), 400)
    g.credits = max(1, math.ceil(len(data) / 10))
    trigger = body.get("trigger")
    if trigger is not None and (not isinstance(trigger, list) or not all(isinstance(t, str) for t in trigger)):
        return _json(_error("INVALID_DATA", "invalid data", {"expected_data_type": "jsonarray", "api_name": "trigger"}),
                     400)
    workflow = trigger is None or "workflow" in trigger
    check_fields = body.get("duplicate_check_fields")
    if check_fields is not None and (not isinstance(check_fields, list)
                                     or not all(isinstance(f, str) for f in check_fields)):
        return _json(_error("INVALID_DATA", "invalid data",
                            {"expected_data_type": "jsonarray", "api_name": "duplicate_check_fields"}), 400)
    if operation == "upsert":
        refused = current.duplicate_check_problem(module, check_fields)
        if refused is not None:
            return _json(refused, 400)
    if path_id is not None:
        if len(data) != 1 or not isinstance(data[0], dict):
            return _json(_error("INVALID_DATA", "invalid data", {"api_name": "data"}), 400)
        data = [{**data[0], "id": path_id}]
    results = current.write(module, operation, data, duplicate_check_fields=check_fields, workflow=workflow)
    ok = [r["status"] == "success" for r in results]
    if all(ok):
        status = 201 if operation == "insert" else 200
    elif any(ok):
        status = 207
    else:
        status = 400  # every record failed: Zoho answers 400 with the per-record results
    return _json({"data": results}, status)


@zoho_api.post("/crm/<version>/<module>")
def insert(version: str, module: str) -> Response:
    return write(version, module, "insert")


@zoho_api.put("/crm/<version>/<module>")
def update(version: str, module: str) -> Response:
    return write(version, module, "update")


@zoho_api.put("/crm/<version>/<module>/<record_id>")
def update_one(version: str, module: str, record_id: str) -> Response:
    return write(version, module, "update", path_id=record_id)


@zoho_api.post("/crm/<version>/<module>/upsert")
def upsert(version: str, module: str) -> Response:
    return write(version, module, "upsert")


@zoho_api.delete("/crm/<version>/<module>")
def delete(version: str, module: str) -> Response:
    # https://www.zoho.com/crm/developer/docs/api/v7/delete-records.html: ?ids=a,b (at most 100)
    # and wf_trigger (default true); billed as one call.
    problem = module_problem(version, module)
    if problem:
        return problem
    ids = [i.strip() for i in request.args.get("ids", "").split(",") if i.strip()]
    if not ids:
        return _json(_error("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", {"param": "ids"}),
                     400)
    if len(ids) > MAX_RECORDS_PER_WRITE:
        return _json(_error("LIMIT_EXCEEDED", f"Only {MAX_RECORDS_PER_WRITE} records can be deleted in one call",
                            {"limit": MAX_RECORDS_PER_WRITE, "param": "ids"}), 400)
    if request.args.get("wf_trigger", "true") not in ("true", "false"):
        return _json(_error("INVALID_DATA", "invalid data", {"param": "wf_trigger"}), 400)
    results = state.delete(module, ids, workflow=request.args.get("wf_trigger", "true") == "true")
    ok = [r["status"] == "success" for r in results]
    return _json({"data": results}, 200 if all(ok) else 207 if any(ok) else 400)


@zoho_api.get("/crm/<version>/<module>/search")
def search(version: str, module: str) -> Response:
    problem = module_problem(version, module)
    if problem:
        return problem
    given = {k: request.args.get(k) for k in ("criteria", "email", "phone", "word") if request.args.get(k)}
    if len(given) != 1:
        return _json(_error("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                            {"param": "criteria/email/phone/word"}), 400)
    page, per_page, paging_error = paging()
    if paging_error:
        return paging_error
    try:
        rows = state.search(module, **given)
    except CriteriaError as exc:
        return _json(_error("INVALID_QUERY", "invalid query formed", {"reason": str(exc)}), 400)
    return page_of(rows, page, per_page)


@zoho_api.post("/crm/<version>/actions/watch")
def watch(version: str) -> Response:
    body, bad = _load_json_body()
    if bad:
        return bad
    answers = []
    for item in (body or {}).get("watch", []) if isinstance(body, dict) else []:
        try:
            events = item["events"]
            for event in events:
                module, _, what = event.partition(".")
                kinds = {"all": ("create", "edit", "delete"), "create": ("create",), "edit": ("edit",),
                         "delete": ("delete",)}[what]
                state.add_webhook(module, item["notify_url"], events=kinds, style="notify",
                                  token=item.get("token"), channel_id=str(item["channel_id"]))
        except (KeyError, TypeError, ValueError) as exc:
            answers.append(_error("INVALID_DATA", "invalid data", {"reason": str(exc)}))
            continue
        answers.append({"code": "SUCCESS", "details": {"events": [
            {"channel_expiry": zoho_time(time.time() + 86400), "resource_uri": f"{base_url()}/crm/v2/{e.split('.')[0]}",
             "resource_name": e.split(".")[0], "channel_id": str(item["channel_id"])} for e in events]},
            "message": "Successfully subscribed for actions-watch of the given module", "status": "success"})
    if not answers:
        return _json(_error("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                            {"param": "watch"}), 400)
    # enabling a watch answers 201 (207 when only some of the channels could be set up)
    ok = [a["status"] == "success" for a in answers]
    return _json({"watch": answers}, 201 if all(ok) else 207 if any(ok) else 400)


@zoho_api.get("/crm/<version>/settings/fields")
def field_metadata(version: str) -> Response:
    # https://www.zoho.com/crm/developer/docs/api/v7/field-meta.html
    module = request.args.get("module")
    if not module:
        return _json(_error("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing",
                            {"param": "module"}), 400)
    problem = module_problem(version, module)
    if problem:
        return problem
    return _json({"fields": state.fields(module)})


@zoho_api.get("/crm/tab/<module>/<record_id>")
def record_web_page(module: str, record_id: str) -> Response:
    """The CRM's web page of a record (the dashboard's deep link); the real one is behind Zoho's sign-in."""
    try:
        record = state.get(module, record_id)
    except (KeyError, SimulatorInputError):
        record = None
    return record_page("Zoho CRM", f"{module} {record_id}", record)


@zoho_api.get("/crm/v8/settings/automation/webhook_failures")
def webhook_failures() -> Response:
    # each item: webhook{name,id}, entity_details{module,name,id}, failure_time, failure_reason, id, workflow_rule
    page, per_page, paging_error = paging()
    if paging_error:
        return paging_error
    items = state.webhook_failure_items()
    module = request.args.get("module")
    if module:
        items = [i for i in items if i["entity_details"]["module"] == module]
    chunk = items[(page - 1) * per_page: page * per_page]
    if not chunk:
        return Response(status=204)
    return _json({"webhook_failures": chunk, "info": {"per_page": per_page, "count": len(chunk), "page": page,
                                                      "more_records": len(items) > page * per_page}})


# ------------------------------------------------------------ admin (no auth)

def admin_body(kind=dict) -> tuple[Any, Response | None]:
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw.decode("utf-8")) if raw.strip() else kind()
    except (UnicodeDecodeError, ValueError):
        return None, _json({"error": "the body must be JSON"}, 400)
    if not isinstance(body, kind):
        return None, _json({"error": f"the body must be a JSON {'object' if kind is dict else 'array'}"}, 400)
    return body, None


def admin_module(module: str) -> Response | None:
    if not state.has_module(module):
        return _json({"error": f"unknown module {module!r}", "modules": list(state.modules)}, 404)
    return None


@zoho_api.get("/_sim/state")
def sim_state() -> Response:
    return _json(state.snapshot())


@zoho_api.get("/_sim/records/<module>")
def sim_records(module: str) -> Response:
    return admin_module(module) or _json({"data": state.records(module)})


@zoho_api.get("/_sim/records/<module>/<record_id>")
def sim_record(module: str, record_id: str) -> Response:
    problem = admin_module(module)
    if problem:
        return problem
    record = state.get(module, record_id)
    return _json(record) if record else _json({"error": f"no {module} record {record_id}"}, 404)


@zoho_api.post("/_sim/records/<module>")
def sim_user_create(module: str) -> Response:
    problem = admin_module(module)
    body, bad = admin_body()
    if problem or bad:
        return problem or bad
    try:
        record_id = state.user_create(module, body)
    except SimulatorInputError as exc:
        return _json({"error": "the CRM refused the record", "result": exc.result}, 422)
    return _json(state.get(module, record_id), 201)


@zoho_api.patch("/_sim/records/<module>/<record_id>")
def sim_user_update(module: str, record_id: str) -> Response:
    problem = admin_module(module)
    body, bad = admin_body()
    if problem or bad:
        return problem or bad
    try:
        return _json(state.user_update(module, record_id, body))
    except KeyError:
        return _json({"error": f"no {module} record {record_id}"}, 404)
    except SimulatorInputError as exc:
        return _json({"error": "the CRM refused the change", "result": exc.result}, 422)


@zoho_api.delete("/_sim/records/<module>/<record_id>")
def sim_user_delete(module: str, record_id: str) -> Response:
    problem = admin_module(module)
    if problem:
        return problem
    try:
        state.user_delete(module, record_id)
    except KeyError:
        return _json({"error": f"no {module} record {record_id}"}, 404)
    return Response(status=204)


@zoho_api.route("/_sim/fields/<module>/<api_name>", methods=["PUT", "PATCH", "DELETE"])
def sim_field(module: str, api_name: str) -> Response:
    """Create (PUT), change (PATCH) or drop (DELETE) a field of the simulated CRM's metadata."""
    problem = admin_module(module)
    if problem:
        return problem
    if request.method == "DELETE":
        if state.field(module, api_name) is None:
            return _json({"error": f"{module} has no field {api_name!r}"}, 404)
        state.drop_field(module, api_name)
        return Response(status=204)
    body, bad = admin_body()
    if bad:
        return bad
    allowed = {"data_type", "length", "unique", "custom_field", "pick_list_values", "lookup_module", "read_only"}
    if set(body) - allowed:
        return _json({"error": f"unknown keys {sorted(set(body) - allowed)}", "allowed": sorted(allowed)}, 400)
    try:
        if request.method == "PUT":
            state.add_field(module, api_name, **body)
        else:
            state.set_field(module, api_name, **body)
    except KeyError as exc:
        return _json({"error": exc.args[0]}, 404)
    return _json(next(f for f in state.fields(module) if f["api_name"] == api_name), 201 if request.method == "PUT" else 200)


@zoho_api.post("/_sim/seed")
def sim_seed() -> Response:
    body, bad = admin_body()
    if bad:
        return bad
    if body.get("demo"):
        return _json({"ids": seed_demo(state)}, 201)
    module, records = body.get("module"), body.get("records")
    if not isinstance(module, str) or not isinstance(records, list):
        return _json({"error": 'expected {"module": "Contacts", "records": [{...}]} or {"demo": true}'}, 400)
    problem = admin_module(module)
    if problem:
        return problem
    ids = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            return _json({"error": f"records[{index}] must be an object", "ids": ids}, 400)
        try:
            ids.append(state.seed(module, record))
        except (SimulatorInputError, ValueError) as exc:
            return _json({"error": str(exc), "index": index, "ids": ids}, 422)
    return _json({"ids": ids}, 201)


@zoho_api.post("/_sim/reset")
def sim_reset() -> Response:
    body, bad = admin_body()
    if bad:
        return bad
    state.reset(oauth=bool(body.get("oauth")))
    return _json({"status": "reset"})


@zoho_api.post("/_sim/faults")
def sim_faults() -> Response:
    body, bad = admin_body()
    if bad:
        return bad
    allowed = {"status", "count", "path_prefix", "delay", "retry_after", "retry_after_header"}
    if set(body) - allowed:
        return _json({"error": f"unknown keys {sorted(set(body) - allowed)}", "allowed": sorted(allowed)}, 400)
    try:
        state.add_fault(**body)
    except (TypeError, ValueError) as exc:
        return _json({"error": str(exc)}, 400)
    return _json({"faults": state.snapshot()["faults"]}, 201)


@zoho_api.post("/_sim/webhooks")
def sim_webhooks() -> Response:
    body, bad = admin_body()
    if bad:
        return bad
    module, url = body.get("module"), body.get("url")
    if not isinstance(module, str) or not isinstance(url, str):
        return _json({"error": 'expected {"module": "Contacts", "url": "http://..", "style": "form|json|notify"}'},
                     400)
    problem = admin_module(module)
    if problem:
        return problem
    try:
        hook_id = state.add_webhook(module, url, events=body.get("events", ("create", "edit")),
                                    style=body.get("style", "form"), token=body.get("token"),
                                    channel_id=body.get("channel_id"))
    except (TypeError, ValueError) as exc:
        return _json({"error": str(exc)}, 400)
    return _json({"id": hook_id}, 201)


# The number settings: their type and least value (PATCH /_sim/settings refuses anything else with 400).
_NUMBER_SETTINGS = (("token_lifetime", int, 1), ("mint_limit", int, 1), ("mint_window", (int, float), 0),
                    ("search_index_delay", (int, float), 0), ("webhook_timeout", (int, float), 0),
                    ("max_concurrent", int, 1))


@zoho_api.patch("/_sim/settings")
def sim_settings() -> Response:
    body, bad = admin_body()
    if bad:
        return bad
    unknown = set(body) - set(SETTABLE) - {"unique_fields"}
    if unknown:
        return _json({"error": f"unknown settings {sorted(unknown)}", "allowed": [*SETTABLE, "unique_fields"]}, 400)
    if "missing_record_style" in body and body["missing_record_style"] not in MISSING_RECORD_STYLES:
        return _json({"error": f"missing_record_style must be one of {MISSING_RECORD_STYLES}"}, 400)
    if "auth_error_code" in body and body["auth_error_code"] not in AUTH_ERRORS:
        return _json({"error": f"auth_error_code must be one of {sorted(AUTH_ERRORS)}"}, 400)
    for name, kind, least in _NUMBER_SETTINGS:
        value = body.get(name)
        if name in body and not (value is None and name == "max_concurrent") and (
                type(value) is bool or not isinstance(value, kind) or value < least):
            what = "a whole number" if kind is int else "a number"
            return _json({"error": f"{name} must be {what} of at least {least}"
                                   + (" (or null: no limit)" if name == "max_concurrent" else "")}, 400)
    if body.get("api_domain") is not None and not isinstance(body["api_domain"], str):
        return _json({"error": "api_domain must be a URL (or null: this server's own)"}, 400)
    for name, value in body.get("unique_fields", {}).items():
        if not state.has_module(name) or not isinstance(value, list):
            return _json({"error": "unique_fields must map known modules to lists of field names"}, 400)
        state.set_unique_fields(name, *value)
    for name in set(body) & set(SETTABLE):
        setattr(state, name, body[name])
    return _json(state.snapshot()["settings"])


def _fault_response(fault: Fault) -> Response:
    if fault.status == 503:
        # a gateway in front of Zoho answers with a page, not JSON
        return Response("<html><body><h1>503 Service Unavailable</h1></body></html>", status=503,
                        content_type="text/html")
    body = copy.deepcopy(FAULT_BODIES.get(fault.status, _error("INTERNAL_ERROR", "simulated failure")))
    headers = {}
    if fault.retry_after is not None and fault.status == 429:
        # Zoho documents no Retry-After header; its sample 429 body carries details.retry_after
        body["details"]["retry_after"] = fault.retry_after
        if fault.retry_after_header:
            headers["Retry-After"] = f"{fault.retry_after:g}"
    return _json(body, fault.status or 500, headers)
