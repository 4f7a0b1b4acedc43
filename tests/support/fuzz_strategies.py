"""Hypothesis strategies for hostile requests to the receiver, shared by the tests and ``bench/fuzz.py``.

``webhook_requests()`` and ``upload_requests()`` draw keyword arguments for Flask's
test client (``client.open(**request)``); ``raw_requests()`` draws the bytes of a
whole HTTP/1.1 request for a socket, malformed in the ways HTTP servers meet
(request lines, headers, framing).  Tokens are parameters: a generator may use the
real secret, so that accepted requests are part of the mix.
"""
from __future__ import annotations

import json

from hypothesis import strategies as st

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
WEBHOOK_PATHS = ("/webhooks/zoho/Contacts", "/webhooks/zoho/Accounts", "/webhooks/zoho/Deals",
                 "/webhooks/zoho/notify", "/webhooks/zoho/Leads", "/webhooks/forms/zoho-forms",
                 "/webhooks/forms/zoho-flow", "/webhooks/forms/typeform", "/healthz", "/readyz")
CONTENT_TYPES = ("application/json", "application/x-www-form-urlencoded", "text/plain", "multipart/form-data",
                 "application/xml", "application/merge-patch+json", "application/zip", "application/octet-stream",
                 "", "text/plain; charset=utf-8", "text/plain; charset=punycode", "text/plain; charset=idna",
                 "text/plain; charset=utf-16", "text/plain; charset=rot13", "text/plain; charset=unicode_escape",
                 "text/plain; charset=utf-7", "text/plain; charset=", "application/json; charset=latin-1",
                 "multipart/form-data; boundary=", "multipart/form-data; boundary=x")
FIELDS = ("id", "record_id", "ids", "module", "operation", "modified_time", "token", "channel_id", "resource_uri",
          "\ud800", "")
RECORD_IDS = ("4150868000000376008", "1", "0", "-1", "١٢٣", "²", "9" * 40, "", " 12 ")

# Text that is hard to handle: lone surrogates, NUL, controls, right-to-left, long runs.
nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(("\ud800", "\udc80", "\x00", "a\x00b", "\u202e", "\ufeff", "%ff", "%ED%A0%80", "../..",
                     "=", "&", "\r\n", "token=x")),
    st.sampled_from(RECORD_IDS),
)


@st.composite
def json_values(draw, token: str | None = None):
    """A JSON-ish value: a field object (maybe with the token), a scalar, or deep nesting."""
    kind = draw(st.sampled_from(("object", "scalar", "deep", "array")))
    if kind == "deep":
        depth = draw(st.sampled_from((10, 900, 5_000, 32_000)))
        return draw(st.sampled_from(("[", "{\"a\":"))) * depth
    if kind == "scalar":
        return draw(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), nasty_text))
    if kind == "array":
        return draw(st.lists(nasty_text, max_size=5))
    fields = draw(st.dictionaries(st.sampled_from(FIELDS) | nasty_text,
                                  st.one_of(nasty_text, st.integers(), st.lists(nasty_text, max_size=3), st.none()),
                                  max_size=6))
    if token is not None and draw(st.booleans()):
        fields["token"] = token
    return fields


def _json_text(value) -> str:

    if isinstance(value, str) and value[:1] in "[{":
        return value  # deep nesting, unterminated on purpose
    return json.dumps(value)  # lone surrogates become "\\ud800" escapes


@st.composite
def plausible_fields(draw, token: str | None = None) -> dict:
    """The fields of a webhook that may well be accepted: a record id, a module, maybe odd extras."""
    record_id = draw(st.sampled_from(RECORD_IDS[:2]) | st.from_regex(r"\A[1-9][0-9]{0,18}\Z"))
    fields: dict = {draw(st.sampled_from(("id", "record_id"))): record_id,
                    "module": draw(st.sampled_from(("Contacts", "contacts", "Deals", "Leads")))}
    if draw(st.integers(0, 3)):
        fields["ids"] = draw(st.lists(st.sampled_from(RECORD_IDS[:2]) | st.just(record_id), min_size=1, max_size=5))
    if draw(st.booleans()):
        fields["operation"] = draw(nasty_text)
    if draw(st.booleans()):
        fields[draw(st.sampled_from(FIELDS) | nasty_text)] = draw(nasty_text)
    if token is not None:
        fields["token"] = token
    return fields


@st.composite
def bodies(draw, token: str | None = None) -> bytes:
    """A request body: JSON (maybe with escaped lone surrogates), form pairs, text or random bytes."""
    kind = draw(st.sampled_from(("plausible", "plausible-pairs", "json", "pairs", "text", "bytes", "empty")))
    if kind == "plausible":
        return json.dumps(draw(plausible_fields(token))).encode("utf-8", "surrogatepass")
    if kind == "plausible-pairs":
        pairs = draw(plausible_fields(token))
        pairs.pop("ids", None)
        return "&".join(f"{k}={v}" for k, v in pairs.items()).encode("utf-8", "surrogatepass")
    if kind == "json":
        text = _json_text(draw(json_values(token)))
        if draw(st.booleans()):
            text = text[: draw(st.integers(0, len(text)))]  # cut short
        return text.encode("utf-8", "surrogatepass")
    if kind == "pairs":
        pairs = draw(st.lists(st.tuples(st.sampled_from(FIELDS) | nasty_text, nasty_text), max_size=5))
        if token is not None and draw(st.booleans()):
            pairs.append(("token", token))
        sep = draw(st.sampled_from(("&", "\n", ";")))
        return sep.join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass")
    if kind == "text":
        return draw(nasty_text).encode("utf-8", "surrogatepass")
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    return b""


@st.composite
def query_strings(draw, token: str | None = None) -> str:
    pairs = draw(st.lists(st.tuples(st.sampled_from(FIELDS[:-2]) | st.text(max_size=8),
                                    st.sampled_from(RECORD_IDS) | st.sampled_from(("%ff", "%ED%A0%80", "%00", "a%2"))),
                          max_size=4))
    if token is not None and draw(st.booleans()):
        pairs.append(("token", token))
    return "&".join(f"{k}={v}" for k, v in pairs)


@st.composite
def header_sets(draw, token: str | None = None, token_header: str = "X-Webhook-Token") -> dict[str, str]:
    headers: dict[str, str] = {}
    if draw(st.booleans()):
        headers[token_header] = token if token is not None and draw(st.booleans()) else draw(
            st.sampled_from(("", "wrong", "\xff\xfe", "a" * 300, " ")))
    if draw(st.booleans()):
        headers["Authorization"] = draw(st.sampled_from(("Bearer ", "Bearer wrong", "Basic Zm9vOmJhcg==",
                                                         f"Bearer {token or 'x'}")))
    if draw(st.booleans()):
        headers["Content-Encoding"] = draw(st.sampled_from(("gzip", "br", "identity")))
    return headers


@st.composite
def webhook_requests(draw, token: str | None = None, paths=WEBHOOK_PATHS) -> dict:
    """Keyword arguments of ``FlaskClient.open`` for a (mostly hostile) request to the receiver."""
    odd = ("/", "//webhooks/zoho/Contacts", "/webhooks/zoho/", "/webhooks/zoho/Contacts/", "/webhooks/forms/",
           "/webhooks/zoho/%00", "/webhooks/zoho/%ff")
    path = draw(st.sampled_from(odd)) if draw(st.integers(0, 5)) == 0 else draw(st.sampled_from(paths))
    method = draw(st.sampled_from(METHODS)) if draw(st.integers(0, 4)) == 0 else "POST"
    return {
        "method": method,
        "path": path,
        "query_string": draw(query_strings(token)),
        "headers": draw(header_sets(token)),
        "content_type": draw(st.sampled_from(CONTENT_TYPES)) or None,
        "data": draw(bodies(token)),
    }


@st.composite
def upload_requests(draw, token: str | None = None, zip_bytes: bytes = b"PK\x03\x04") -> dict:
    """Keyword arguments of ``FlaskClient.open`` for a (mostly hostile) POST /dailyup/deliveries."""
    plausible = draw(st.booleans())
    name = "DailyUp_1_20260101.zip" if plausible else draw(st.sampled_from(("DailyUp_1_20260101.zip", "DailyUp_12_20261231.zip", "../../etc/passwd",
                                 "DailyUp_1_20260101.zip\x00.txt", "", "a" * 300, "DailyUp_\ud800.zip")) | nasty_text)
    body = draw(st.sampled_from((zip_bytes, zip_bytes, zip_bytes[:3], b"", b"PK\x03\x04" + b"\x00" * 50))
                | st.binary(max_size=300))
    content_type = "application/zip" if plausible else draw(st.sampled_from(("application/zip", "application/octet-stream", "multipart/form-data",
                                         "multipart/form-data; boundary=x", "text/plain", "")))
    headers = draw(header_sets(token, token_header="X-Upload-Token"))
    if token is not None and draw(st.booleans()):
        headers["X-Upload-Token"] = token
    if content_type.startswith("multipart/form-data") and draw(st.booleans()):
        boundary = "fuzzboundary"
        content_type = f"multipart/form-data; boundary={boundary}"
        filename = name.encode("utf-8", "surrogatepass")
        body = (b"--" + boundary.encode() + b"\r\nContent-Disposition: form-data; name=\"file\"; filename=\""
                + filename + b"\"\r\nContent-Type: application/zip\r\n\r\n" + body
                + draw(st.sampled_from((b"\r\n--" + boundary.encode() + b"--\r\n", b"", b"\r\n--"))))
    return {
        "method": "POST",
        "path": "/dailyup/deliveries",
        "query_string": {"name": name.encode("utf-8", "surrogatepass")} if draw(st.booleans()) else "",
        "headers": headers,
        "content_type": content_type or None,
        "data": body,
    }


@st.composite
def raw_requests(draw, token: str | None = None) -> bytes:
    """The bytes of one HTTP/1.1 request, malformed in the request line, the headers or the framing."""
    method = draw(st.sampled_from(METHODS) | st.sampled_from(("G\x01T", "", "get", "GET GET", "P" * 40)))
    target = draw(st.sampled_from(WEBHOOK_PATHS) | st.sampled_from(("*", "", "http://x/healthz", "/" + "a" * 9000,
                                                                    "/healthz?token=" + (token or "secret"),
                                                                    "/%00", "/\x7f", "/a b")))
    version = draw(st.sampled_from(("HTTP/1.1", "HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/1.1 junk", "", "http/1.1")))
    line = " ".join(part for part in (method, target, version) if part)
    headers = [b"Host: test"]
    framing = draw(st.sampled_from(("length", "short", "chunked", "bad-chunk", "both", "none", "expect", "te")))
    body = draw(bodies(token))
    if framing in ("length", "expect"):
        headers.append(b"Content-Length: %d" % len(body))
        if framing == "expect":
            headers.append(b"Expect: " + draw(st.sampled_from((b"100-continue", b"100-wibble", b"x"))))
    elif framing == "short":
        headers.append(b"Content-Length: %d" % (len(body) + draw(st.integers(1, 50))))
    elif framing == "chunked":
        headers.append(b"Transfer-Encoding: chunked")
        body = (b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n") if body else b"0\r\n\r\n"
    elif framing == "bad-chunk":
        headers.append(b"Transfer-Encoding: chunked")
        body = draw(st.sampled_from((b"ZZ", b"-1", b"1" * 30, b"4;" + b"x" * 5000, b"4\r\nabcdX"))) + b"\r\n" + body
    elif framing == "both":
        headers += [b"Content-Length: %d" % len(body), b"Transfer-Encoding: chunked"]
    elif framing == "te":
        headers.append(b"Transfer-Encoding: " + draw(st.sampled_from((b"gzip", b"chunked, chunked", b"identity",
                                                                        b"x" * 100))))
    extra = draw(st.sampled_from(("none", "many", "long", "bad-name", "folded", "token")))
    if extra == "many":
        headers += [b"X-%d: 1" % i for i in range(draw(st.sampled_from((50, 101, 300))))]
    elif extra == "long":
        headers.append(b"X-Long: " + b"a" * draw(st.sampled_from((100, 8190, 20000))))
    elif extra == "bad-name":
        headers.append(draw(st.sampled_from((b"Bad Name: 1", b"X\x00: 1", b": empty", b"NoColon"))))
    elif extra == "folded":
        headers += [b"X-Fold: a", b" continued"]
    elif extra == "token" and token is not None:
        headers.append(b"X-Webhook-Token: " + token.encode())
    return line.encode("latin-1") + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + body
