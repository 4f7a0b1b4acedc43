"""Answer every error as JSON, never with a stack trace."""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger("syncbridge.webhooks")

_ERROR_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    411: "length_required",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    417: "expectation_failed",
    431: "request_header_fields_too_large",
    500: "internal_error",
    501: "not_implemented",
    503: "unavailable",
}


def error_response(status: int, error: str, message: str, **extra):
    """A JSON error answer: ``{"error": ..., "message": ..., **extra}``."""
    response = jsonify({"error": error, "message": message, **extra})
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    """Turn HTTP errors and unexpected exceptions into JSON answers."""

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        # An exception may name its own error and add fields (e.g. a contract's field errors).
        error = getattr(exc, "error", None) or _ERROR_NAMES.get(status, "error")
        response = error_response(status, error, exc.description or exc.name, **getattr(exc, "extra", {}))
        # Keep headers such as Allow (405) and WWW-Authenticate; the body is ours.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error while answering a request")
        return error_response(500, "internal_error", "The request could not be processed; the error was logged.")
