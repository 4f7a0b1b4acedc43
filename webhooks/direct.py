"""The usual Zoho workflow webhook, answered without Flask's request dispatch.

Nearly every request the receiver gets is the same: ``POST /webhooks/zoho/<module>``
of a synced module, in one of the two styles of Zoho's workflow rules — a form body
(``application/x-www-form-urlencoded``: ``id=...`` and the secret as the ``token``
parameter, in the body or the query string) or a JSON body (``application/json``, the
secret in the ``X-Webhook-Token`` header) — whose parameters plainly satisfy the
contract.  :class:`DirectWorkflow` (WSGI middleware inside ``BodyGuard``) answers
exactly those itself, through the same code as the Flask route (``webhooks.routes``):
the same token check, the same reading of the parameters (query parameters first, the
body's fields over them), the same event, publish, metrics and log line, the same 202
body and headers; 503 when the broker did not take the event.  It spares the request
context, URL matching, signals and response objects Flask makes per request.

Every other request, and every one of those that is not plainly fine (a wrong or
missing token, a body that does not parse, a payload the contract refuses),
goes on to the Flask app, which answers it as it always did, with the body read so
far handed on unchanged (or the error reading it raised, raised again there).  An
unexpected error after the body was read goes to Flask as well, raised again before
the route would run (``webhooks.routes``), so it is answered, logged and reported
(Sentry) as an error of the route; nothing is published twice.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import werkzeug.urls  # noqa: F401 - registers the "werkzeug.url_quote" error handler its parsing uses
from werkzeug.exceptions import BadRequest
from werkzeug.wsgi import get_input_stream

from contracts.webhooks import plain_workflow_webhook
from webhooks.payload import TOKEN_ENVIRON, TOKEN_PARAM, parse_json, token_matches
from webhooks.routes import (
    DIRECT_FAILURE,
    NOTIFY,
    WORKFLOW_PREFIX,
    queue_events,
    queued_body,
    unavailable,
    workflow_event,
    workflow_module_errors,
)

if TYPE_CHECKING:
    from flask import Flask

    from webhooks.receiver import Receiver

PREFIX = WORKFLOW_PREFIX
JSON, FORM = "application/json", "application/x-www-form-urlencoded"


class DirectWorkflow:
    """WSGI middleware answering the plainly valid Zoho workflow webhook; everything else goes to ``wsgi_app``."""

    def __init__(self, app: Flask, wsgi_app: Callable, receiver: Receiver) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.receiver = receiver

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        synced = self._synced_module(environ)
        if synced is None:
            return self.wsgi_app(environ, start_response)
        try:
            if "wsgi.input_terminated" in environ:
                # The server ends the body at its Content-Length, which is within the limit: read as it is.
                data = environ["wsgi.input"].read()
            else:
                data = get_input_stream(environ, max_content_length=self.app.config["MAX_CONTENT_LENGTH"]).read()
        except Exception as exc:  # noqa: BLE001 - raised again where Flask reads the body, and answered there
            environ["wsgi.input"] = _Failing(exc)
            return self.wsgi_app(environ, start_response)
        try:
            answer = self._answer(environ, synced, data)
        except Exception as exc:  # noqa: BLE001 - raised again in Flask: answered and reported as now
            environ[DIRECT_FAILURE] = exc
            answer = None
        if answer is None:
            environ["wsgi.input"] = io.BytesIO(data)
            return self.wsgi_app(environ, start_response)
        if answer is False:
            with self.app.app_context():
                response = unavailable()
            return response(environ, start_response)
        body = answer.encode("utf-8")
        start_response("202 ACCEPTED", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def _synced_module(self, environ: dict[str, Any]) -> str | None:
        """The synced module a request to answer here is for; None for any request Flask is to answer."""
        content_type = environ.get("CONTENT_TYPE")
        if environ.get("REQUEST_METHOD") != "POST" or content_type not in (JSON, FORM) \
                or (content_type == JSON and environ.get("QUERY_STRING")):
            return None
        path = environ.get("PATH_INFO") or ""
        if not path.startswith(PREFIX):
            return None
        module = path[len(PREFIX):]
        if not module or "/" in module or module == NOTIFY or not module.isascii():
            return None
        length = environ.get("CONTENT_LENGTH")
        if not length or not (length.isascii() and length.isdigit()) or self.app.debug:
            return None
        maximum = self.app.config["MAX_CONTENT_LENGTH"]
        if maximum is not None and int(length) > maximum:
            return None
        if content_type == JSON:
            # The JSON style's secret is in the header; a form's may be in its body, read later.
            token = environ.get(TOKEN_ENVIRON)
            if not token or not token_matches(self.receiver.settings.zoho_webhook_token, [token]):
                return None
        return self.receiver.module_named(module)

    def _answer(self, environ: dict[str, Any], synced: str, data: bytes) -> str | bool | None:
        """The 202 body once the event is queued, False when the broker did not take it, None to leave it to Flask."""
        params = self._params(environ, data)
        if params is None:
            return None
        module = environ["PATH_INFO"][len(PREFIX):]
        if workflow_module_errors(self.receiver, module, synced, params):
            return None
        loaded = plain_workflow_webhook(params)
        if loaded is None:
            return None
        event = workflow_event(synced, loaded)
        if not queue_events(self.receiver, [event], environ):
            return False
        return queued_body(event)

    def _params(self, environ: dict[str, Any], data: bytes) -> dict[str, Any] | None:
        """The request's parameters as ``webhooks.payload.read_params`` reads them, once its secret matched;
        None for anything Flask is to answer (a body that does not parse, no matching secret)."""
        try:
            if environ["CONTENT_TYPE"] == JSON:
                params = parse_json(data)       # its header's secret matched already
                return params if type(params) is dict else None
            # A form: query parameters first, the body's fields over them; of a name given twice, the first
            # value (werkzeug's MultiDict.to_dict).  A raw JSON body sent under the form type is read as JSON.
            # WSGI hands the query string over as latin-1 text of its bytes, which werkzeug reads as UTF-8.
            query = _first_values(environ["QUERY_STRING"].encode("latin-1").decode()) \
                if environ.get("QUERY_STRING") else {}
            if data.lstrip().startswith(b"{"):
                body = parse_json(data)
            else:
                body = _first_values(data.decode())
        except (BadRequest, UnicodeError):   # MalformedBody, or text that is not UTF-8: Flask answers it
            return None
        if type(body) is not dict:
            return None
        params = {**query, **body}
        presented = [token for token in (environ.get(TOKEN_ENVIRON), query.get(TOKEN_PARAM), params.get(TOKEN_PARAM))
                     if isinstance(token, str) and token]
        if not token_matches(self.receiver.settings.zoho_webhook_token, presented):
            return None
        return params


def _first_values(text: str) -> dict[str, str]:
    """``a=1&b=2`` as werkzeug parses a query string or a form body, the first value of each name."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote"):
        params.setdefault(name, value)
    return params


class _Failing:
    """A request body whose reading failed: reading it raises that error again."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def read(self, *args: Any) -> bytes:
        raise self.error

    readline = read

    def readinto(self, buffer: Any) -> int:
        raise self.error
