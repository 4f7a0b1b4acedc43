"""Read a webhook's parameters and shared secret from whatever shape the sender chose.

Zoho workflow rules send form bodies, query strings or a raw JSON body; Zoho Forms
sends JSON, form-encoded or multipart; Zoho Flow JSON, form data or plain text.
Every variant becomes one flat dict: query parameters first, the body's fields
over them.

Whatever the bytes, reading ends in parameters or in a 4xx: a body nested too
deeply, in a charset that is not a text encoding we accept, or holding strings
that are not valid Unicode (lone surrogates from ``\\ud800`` escapes) is a
``MalformedBody`` (400) or an ``UnsupportedMediaType`` (415), never a 500.
"""
from __future__ import annotations

import codecs
import hmac
import json
from typing import Any
from urllib.parse import parse_qsl

from flask import Request, request
from werkzeug.exceptions import BadRequest, Unauthorized, UnsupportedMediaType

TOKEN_HEADER = "X-Webhook-Token"
TOKEN_PARAM = "token"
# The header of the secret as a WSGI environ key.
TOKEN_ENVIRON = "HTTP_" + TOKEN_HEADER.upper().replace("-", "_")


# Text encodings a text/plain body may declare (by codecs' canonical name).  Others,
# e.g. punycode, idna, rot13 or unicode_escape, are no text encodings of a webhook.
TEXT_CHARSETS = frozenset({"utf-8", "utf-8-sig", "ascii", "iso8859-1", "iso8859-15", "cp1252",
                           "utf-16", "utf-16-le", "utf-16-be"})


class MalformedBody(BadRequest):
    """The body does not parse as its content type says."""

    error = "malformed_body"


def read_params(request: Request) -> dict[str, Any]:
    """Query parameters overlaid with the body's fields (GET: query only)."""
    # No query string (the usual webhook): no parameters to parse from it.
    params: dict[str, Any] = request.args.to_dict(flat=True) if request.environ.get("QUERY_STRING") else {}
    if request.method == "GET":
        return params
    body = _read_body(request)
    if not isinstance(body, dict):
        raise MalformedBody("The JSON body must be an object of fields.")
    params.update(body)
    return params


def _read_body(request: Request) -> Any:
    content_type = request.environ.get("CONTENT_TYPE")
    # The usual webhook's type needs no parsing (its parameters, if any, would).
    mimetype = "application/json" if content_type == "application/json" else request.mimetype
    if mimetype == "multipart/form-data":
        # Parsing the form enforces MAX_CONTENT_LENGTH (413) like get_data() does; files are ignored.
        return request.form.to_dict(flat=True)
    data = request.get_data(cache=True)  # 413 above MAX_CONTENT_LENGTH
    if mimetype == "application/x-www-form-urlencoded":
        # A user-written raw JSON body may go out under Zoho's default form content type.
        if data.lstrip().startswith(b"{"):
            return parse_json(data)
        return request.form.to_dict(flat=True)  # parsed from the cached data
    if not data.strip():
        return {}
    if mimetype == "application/json" or mimetype.endswith("+json"):
        return parse_json(data)
    if mimetype == "text/plain" or not mimetype:
        # Plain text (Zoho Flow) or no type at all: JSON if it looks like it, else key=value pairs.
        text = _text(data, request.mimetype_params.get("charset", "utf-8"))
        if text.lstrip().startswith(("{", "[")):
            return parse_json(text)
        return _pairs(text)
    raise UnsupportedMediaType(
        f"Content type {mimetype!r} is not accepted; send application/json, "
        "application/x-www-form-urlencoded, multipart/form-data or text/plain."
    )


def parse_json(data: bytes | str) -> Any:
    """The value of a JSON body; MalformedBody (400) when it is not JSON or holds a string that is not Unicode."""
    try:
        value = json.loads(data)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, an integer of too many digits
        raise MalformedBody("The body is not valid JSON.") from None
    except RecursionError:
        raise MalformedBody("The JSON body is nested too deeply.") from None
    if not _plainly_unicode(data) and not _valid_unicode(value):
        raise MalformedBody("The JSON body holds a string that is not valid Unicode (a lone surrogate).")
    return value


def _plainly_unicode(data: bytes | str) -> bool:
    """True when JSON text ``data`` cannot give a lone surrogate: ASCII, no NUL (so read as UTF-8), no ``\\u`` escape.

    Only an escape (``\\ud800``) or a surrogate's UTF-8 bytes (which json.loads lets through)
    can put one into the value; the usual webhook has neither, and is not walked.
    """
    if isinstance(data, bytes):
        return data.isascii() and b"\x00" not in data and b"\\u" not in data
    return data.isascii() and "\\u" not in data


def _valid_unicode(value: Any) -> bool:
    """True unless a string (key or value) anywhere in ``value`` has a lone surrogate; iterative, any depth."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return True


def _text(data: bytes, charset: str) -> str:
    try:
        name = codecs.lookup(charset.strip().lower()).name
    except (LookupError, ValueError):
        name = None
    if name not in TEXT_CHARSETS:
        raise UnsupportedMediaType(f"Charset {charset[:40]!r} is not accepted; send text as UTF-8.")
    try:
        return data.decode(name)
    except UnicodeError:
        raise MalformedBody(f"The body is not valid {name} text.") from None


def _pairs(text: str) -> dict[str, str]:
    """Parse ``a=1&b=2`` or one ``a=1`` per line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        pairs = [line.partition("=") for line in lines]
        if all(sep and key.strip() for key, sep, _ in pairs):
            return {key.strip(): value.strip() for key, _, value in pairs}
    else:
        try:
            return dict(parse_qsl(text.strip(), keep_blank_values=True, strict_parsing=True))
        except ValueError:
            pass
    raise MalformedBody("The text body is neither a JSON object nor key=value pairs.")


def presented_tokens(request: Request, params: dict[str, Any] | None = None) -> list[str]:
    """Every secret the caller presented: the header, then a ``token`` parameter."""
    environ = request.environ
    # The header as request.headers reads it; the query string parsed only if there is one.
    candidates = [environ.get(TOKEN_ENVIRON), request.args.get(TOKEN_PARAM) if environ.get("QUERY_STRING") else None]
    if params is not None:
        candidates.append(params.get(TOKEN_PARAM))
    return [token for token in candidates if isinstance(token, str) and token]


def token_matches(expected: str, presented: list[str]) -> bool:
    """Compare in constant time; an unset secret never matches."""
    if not expected:
        return False
    wanted = expected.encode("utf-8")
    # Evaluate every candidate (no short-circuit) so timing does not tell which one was compared.
    # "surrogatepass": a token with a lone surrogate is just a wrong token.
    results = [hmac.compare_digest(wanted, token.encode("utf-8", "surrogatepass")) for token in presented]
    return any(results)


def require_secret(expected: str, header: str) -> None:
    """Raise 401 unless this request presents ``expected`` in ``header`` or as a Bearer token."""
    presented = [request.headers.get(header, "")]
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        presented.append(auth[7:].strip())
    if not token_matches(expected, [p for p in presented if p]):
        raise Unauthorized(f"Missing or wrong secret: send it in the {header} header or as a Bearer token.")
