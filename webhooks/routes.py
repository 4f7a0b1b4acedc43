"""Webhook routes: authenticate, load the contract, publish the event, answer 202.

Zoho does not sign webhooks; each source has a shared secret, sent in the
``X-Webhook-Token`` header or a ``token`` parameter (query, form field or JSON
field), compared in constant time.  Wire formats: workflow-rule webhooks
(https://www.zoho.com/crm/help/automation/webhooks.html) and the Notification API
(https://www.zoho.com/crm/developer/docs/api/v8/notifications/overview.html).
"""
from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from marshmallow import Schema
from werkzeug.exceptions import BadRequest, MethodNotAllowed, Unauthorized, UnsupportedMediaType

from contracts.base import ContractError, load_or_raise
from contracts.webhooks import (
    FormsWebhookSchema,
    ZohoNotificationSchema,
    ZohoWorkflowWebhookSchema,
    plain_workflow_webhook,
)
from producers.crm_events import publish_crm_record_changed, publish_crm_records_changed
from producers.publisher import BrokerUnavailable
from syncbridge import metrics
from syncbridge.messages import CrmRecordChanged
from webhooks import access_log
from webhooks.errors import error_response
from webhooks.payload import presented_tokens, read_params, token_matches
from webhooks.receiver import Receiver, current_receiver

log = logging.getLogger("syncbridge.webhooks")

bp = Blueprint("webhooks", __name__)

# Seconds a sender is asked to wait after a 503 (the broker is usually back within this).
RETRY_AFTER_S = 10

_workflow_schema = ZohoWorkflowWebhookSchema()
_notification_schema = ZohoNotificationSchema()
_forms_schema = FormsWebhookSchema()


# The workflow webhook is POST WORKFLOW_PREFIX + <module>; WORKFLOW_PREFIX + NOTIFY is the Notification API's
# callback.  ``webhooks.direct`` recognises the usual workflow webhook by these same two names.
WORKFLOW_PREFIX = "/webhooks/zoho/"
NOTIFY = "notify"

# In a request's environ: an error ``webhooks.direct`` met answering it, raised here instead of the route running.
DIRECT_FAILURE = "syncbridge.direct_failure"


@bp.before_request
def _direct_failure() -> None:
    """Raise what went wrong where ``webhooks.direct`` answered the request: answered and reported as the route's error."""
    failure = request.environ.pop(DIRECT_FAILURE, None)
    if failure is not None:
        raise failure


# ---------------------------------------------------------------- webhooks
@bp.post(WORKFLOW_PREFIX + NOTIFY)
def zoho_notification():
    """Queue one event per record id of a Zoho Notification API callback."""
    receiver = current_receiver()
    params = _authenticated_params(receiver.settings.zoho_notify_token)
    data = _load(_notification_schema, params)
    module = _synced_module(receiver, data["module"])
    events = [
        _event("zoho-notify", module, record_id, data["operation"], None)
        for record_id in dict.fromkeys(data["ids"])  # a repeated id is one change
    ]
    failure = _publish(receiver, events)
    if failure is not None:
        return failure
    return jsonify({"event_ids": [event.event_id for event in events], "status": "queued"}), 202


@bp.route(WORKFLOW_PREFIX + "<module>", methods=["GET", "POST"])
def zoho_workflow(module: str):
    """Queue the record event of a Zoho workflow-rule webhook."""
    if module == NOTIFY:
        # GET on the notification URL would otherwise land here with module "notify".
        raise MethodNotAllowed(valid_methods=["POST"])
    if request.method == "HEAD":
        # Flask answers HEAD with the GET view; a probe must not queue an event.
        raise MethodNotAllowed(valid_methods=["GET", "POST"])
    receiver = current_receiver()
    params = _authenticated_params(receiver.settings.zoho_webhook_token)
    synced = receiver.module_named(module)
    module_errors = workflow_module_errors(receiver, module, synced, params)
    # The usual webhook is read without marshmallow; anything else goes through the contract.
    data = None if module_errors else plain_workflow_webhook(params)
    if data is None:
        data = _load(_workflow_schema, params, module_errors)
    event = workflow_event(synced, data)
    return _publish(receiver, [event]) or _queued(event)


def workflow_module_errors(receiver: Receiver, module: str, synced: str | None, params: dict[str, Any]) -> dict:
    """The contract's errors of a workflow webhook's module (URL ``module``, synced as ``synced``): none if fine."""
    if synced is None:
        return {"module": [_not_synced(receiver, module)]}
    named = params.get("module")
    if isinstance(named, str) and named.strip() and named.strip().lower() != synced.lower():
        return {"module": [f"The payload names module {named!r}, the URL {module!r}."]}
    return {}


def workflow_event(module: str, data: dict[str, Any]) -> CrmRecordChanged:
    """The event of a workflow webhook of the synced ``module`` whose parameters loaded as ``data``."""
    return _event("zoho-workflow", module, data["id"], data["operation"], data["modified_time"])


@bp.post("/webhooks/forms/<source>")
def forms(source: str):
    """Queue the record event of a Zoho Flow / Zoho Forms automation."""
    receiver = current_receiver()
    # An unknown source has no valid token: it answers 401 like a known one with a wrong
    # token, so source names cannot be found out by trying them.
    expected = receiver.settings.forms_tokens.get(source, "")
    params = _authenticated_params(expected)
    data = _load(_forms_schema, params)
    module = _synced_module(receiver, data["module"] or receiver.settings.forms_default_module)
    event = _event(f"forms:{source}", module, data["record_id"], data["operation"], None)
    return _publish(receiver, [event]) or _queued(event)


# ---------------------------------------------------------------- health
@bp.get("/healthz")
def healthz():
    """Answer while the process is alive."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Run every readiness check; 503 naming the checks that failed (why is logged, not answered)."""
    receiver = current_receiver()
    try:
        checks = receiver.checks
    except Exception as exc:  # noqa: BLE001 - reported as not ready, never as a 500
        log.warning("readiness checks could not be built: %s", _reason(exc))
        return jsonify({"status": "not_ready", "checks": {"checks": "unavailable"}}), 503
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            # The driver's text names hosts, ports and users: for the log only, never for an anonymous caller.
            log.warning("readiness check %s failed: %s", name, _reason(exc))
            results[name] = "unavailable"
    ready = all(result == "ok" for result in results.values())
    return jsonify({"status": "ready" if ready else "not_ready", "checks": results}), 200 if ready else 503


# ---------------------------------------------------------------- helpers
def _authenticated_params(expected_token: str) -> dict[str, Any]:
    """The request's parameters, once its secret matched (401 before any contract is looked at).

    A secret in the header or the query is checked before the body is read; only a
    caller without one there has its body parsed, to look for a ``token`` field.
    """
    authenticated = token_matches(expected_token, presented_tokens(request))
    try:
        params = read_params(request)
    except (BadRequest, UnsupportedMediaType):
        # An unreadable body cannot carry the token; a caller without one learns nothing more.
        if not authenticated:
            raise _unauthorized() from None
        raise
    if not authenticated and not token_matches(expected_token, presented_tokens(request, params)):
        raise _unauthorized()
    return params


def _unauthorized() -> Unauthorized:
    return Unauthorized("A valid token is required (X-Webhook-Token header or token parameter).")


class InvalidPayload(BadRequest):
    """The payload does not satisfy its contract; ``fields`` maps field -> messages."""

    error = "invalid_payload"

    def __init__(self, fields: dict) -> None:
        super().__init__("The payload does not satisfy its contract.")
        self.extra = {"fields": fields}


def _load(schema: Schema, params: dict[str, Any], extra_errors: dict | None = None) -> dict[str, Any]:
    """Load ``params`` through ``schema``; 400 with every field error (the contract's and ``extra_errors``)."""
    errors = dict(extra_errors or {})
    try:
        data = load_or_raise(schema, params)
    except ContractError as exc:
        errors = {**exc.errors, **errors}
    if errors:
        raise InvalidPayload(errors)
    return data


def _synced_module(receiver: Receiver, module: str) -> str:
    """The configured spelling of ``module``; 400 when the module is not synced."""
    name = receiver.module_named(module)
    if name is None:
        raise InvalidPayload({"module": [_not_synced(receiver, module)]})
    return name


def _not_synced(receiver: Receiver, module: str) -> str:
    modules = ", ".join(receiver.settings.zoho_modules)
    return f"Module {module!r} is not synced; synced modules: {modules}."


def _event(
    source: str, module: str, record_id: str, operation: str | None, modified_time: str | None
) -> CrmRecordChanged:
    return CrmRecordChanged(
        event_id=str(uuid.uuid4()),
        source=source,
        module=module,
        record_id=record_id,
        received_at=datetime.now(UTC),
        operation=operation,
        modified_time=modified_time,
    )


def _publish(receiver: Receiver, events: list[CrmRecordChanged]):
    """Publish the events in one confirmed batch; None when all were confirmed, else the 503 answer."""
    return None if queue_events(receiver, events, request.environ) else unavailable()


def unavailable():
    """The 503 answer to a request whose events the broker did not take (under an app context)."""
    response = error_response(503, "unavailable", "The event could not be queued; try again later.")
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def queue_events(receiver: Receiver, events: list[CrmRecordChanged], environ: dict[str, Any]) -> bool:
    """Publish the events of the request of ``environ`` in one confirmed batch; False when the broker did not take them.

    Counted, and logged: on the request's access line where the server's line carries
    it (``webhooks.access_log``), else on a line of its own per event.
    """
    first = events[0]
    for event in events:
        metrics.received(event.source, event.module)
    try:
        if len(events) == 1:
            publish_crm_record_changed(receiver.publisher, receiver.topology, events[0])
        else:
            publish_crm_records_changed(receiver.publisher, receiver.topology, events)
    except BrokerUnavailable as exc:
        metrics.webhook_failed(first.source, "broker_unavailable")
        log.warning("%d event(s) not queued (first %s, record %s/%s, source %s): %s", len(events),
                    first.event_id, first.module, first.record_id, first.source, exc)
        return False
    metrics.published(first.source, len(events))
    metrics.webhook_seconds(first.source, (datetime.now(UTC) - first.received_at).total_seconds())
    if len(events) == 1 and environ.get(access_log.CARRIED):
        # Under gunicorn the request's access line says what it queued: one line, not two.
        environ[access_log.QUEUED] = (f"queued event {first.event_id} module={first.module} "
                                      f"record_id={first.record_id} source={first.source}")
        return True
    for event in events:
        log.info("queued event %s module=%s record_id=%s source=%s",
                 event.event_id, event.module, event.record_id, event.source)
    return True


# The 202 body as jsonify writes it outside debug mode: compact JSON and a newline.
_ANSWER = json.JSONEncoder(separators=(",", ":"))


def queued_body(event: CrmRecordChanged) -> str:
    """The body of the 202 answer to a request that queued ``event`` (outside debug mode)."""
    return _ANSWER.encode({"event_id": event.event_id, "status": "queued"}) + "\n"


def _queued(event: CrmRecordChanged):
    if current_app.debug:
        return jsonify({"event_id": event.event_id, "status": "queued"}), 202
    return current_app.response_class(queued_body(event), status=202, mimetype="application/json")


def _reason(exc: Exception) -> str:
    """One short line for a failed check: the error's type and first line, no traceback."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:200]
