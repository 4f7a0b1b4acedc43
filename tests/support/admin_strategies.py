"""Hypothesis strategies for hostile requests to the admin API (and the DailyUp admin routes).

A request is a transport-neutral :class:`AdminRequest` (method, percent-encoded
path and query, headers, body bytes), so the same strategies drive Flask's test
client in the tests and a real HTTP client in a longer bench run.  :func:`problems`
says what is wrong with an answer: a 5xx other than a 503, a body that is not
JSON, an answer that took too long.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import quote

from hypothesis import strategies as st

ADMIN_TOKEN_HEADER = "X-Admin-Token"
FILTER_NAMES = ("queue", "kind", "record", "since", "until", "state")
QUERY_NAMES = (*FILTER_NAMES, "limit", "sha256", "name", "token")
ACTION_FIELDS = ("ids", "filter", "all", "dry_run", "force", "by", "note")

# Values that broke, or could break, a parser or a database column.
NASTY_TEXT = (
    "", " ", "0", "-1", "+1", "1.0", "1e3", "NaN", "Infinity", "²", "１２", "٣", "0x10", "1_000",
    "9223372036854775807", "9223372036854775808", "99999999999999999999999999", "9" * 400,
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0000-00-00", "2026-02-30", "2026-12-01T25:00",
    "2026-12-01", "2026-12-01T08:00Z", "yesterday", "latest", "dead", "crm-to-ameise", "contract",
    "\x00", "a\x00b", "\ud800", "\udc80x", "\x1b[31m", "\r\n", "\u202e", "%00", "' OR 1=1 --", "../../etc/passwd",
    "=cmd|' /C calc'!A0", "a" * 300, "ä" * 70,
)
NASTY_INTS = (0, -1, 1, 2, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30)


def hostile_text(max_size: int = 80) -> st.SearchStrategy[str]:
    """Text with control characters, lone surrogates and the values in :data:`NASTY_TEXT`."""
    anything = st.text(st.characters(codec=None, categories=None), max_size=max_size)  # surrogates included
    return st.one_of(st.sampled_from(NASTY_TEXT), st.sampled_from(NASTY_TEXT), anything,
                     st.from_regex(r"[0-9]{1,25}", fullmatch=True))


def hostile_bytes(max_size: int = 60) -> st.SearchStrategy[bytes]:
    """Bytes as they may arrive percent-encoded: UTF-8 of hostile text, or anything (invalid UTF-8 too)."""
    return st.one_of(hostile_text(max_size).map(lambda text: text.encode("utf-8", "surrogatepass")),
                     st.binary(max_size=max_size))


def encoded(raw: bytes) -> str:
    """Percent-encode every byte that is not plainly safe."""
    return quote(raw, safe="")


@st.composite
def query_strings(draw, names: tuple[str, ...] = QUERY_NAMES) -> str:
    """A query string: known and unknown names, repeated ones, hostile values, odd separators."""
    pairs = draw(st.lists(st.tuples(st.one_of(st.sampled_from(names), hostile_bytes(12)), hostile_bytes()),
                          max_size=6))
    separator = draw(st.sampled_from(["&", "&", ";", "&&"]))
    return separator.join(f"{encoded(name if isinstance(name, bytes) else name.encode())}={encoded(value)}"
                          for name, value in pairs)


def json_scalars() -> st.SearchStrategy:
    return st.one_of(st.none(), st.booleans(), st.sampled_from(NASTY_INTS), st.integers(),
                     st.floats(allow_nan=True, allow_infinity=True), hostile_text())


def json_values() -> st.SearchStrategy:
    return st.recursive(json_scalars(), lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(hostile_text(12), inner, max_size=4)), max_leaves=12)


@st.composite
def action_objects(draw) -> dict:
    """A replay/discard body: known fields with plausible or hostile values, sometimes an unknown one."""
    body = {}
    for name in draw(st.lists(st.sampled_from(ACTION_FIELDS), unique=True, max_size=5)):
        if name == "ids":
            body[name] = draw(st.one_of(st.lists(st.one_of(st.sampled_from(NASTY_INTS), st.integers(1, 50)),
                                                 max_size=5), json_values()))
        elif name == "filter":
            body[name] = draw(st.one_of(
                st.dictionaries(st.sampled_from(FILTER_NAMES), st.one_of(hostile_text(), json_scalars()), max_size=4),
                json_values()))
        elif name in ("all", "force"):
            body[name] = draw(st.one_of(st.booleans(), json_scalars()))
        elif name == "dry_run":
            body[name] = draw(st.one_of(st.just(True), json_scalars()))
        else:
            body[name] = draw(st.one_of(hostile_text(300), json_scalars()))
    if draw(st.booleans()) and not body:
        body[draw(hostile_text(12))] = draw(json_values())
    return body


def deeply_nested(depth: int) -> bytes:
    return b'{"filter": ' * (depth // 2) + b"[" * (depth // 2) + b"]" * (depth // 2) + b"}" * (depth // 2)


def json_bodies() -> st.SearchStrategy[bytes]:
    """Bodies for replay and discard: action objects, any JSON, nesting past the parser's limit, not JSON at all."""
    return st.one_of(
        action_objects().map(lambda body: json.dumps(body).encode()),
        json_values().map(lambda value: json.dumps(value).encode()),
        st.integers(1000, 40000).map(deeply_nested),
        st.sampled_from([b"", b"null", b'{"ids": [' + b"9" * 5000 + b"]}", b'{"ids": [1e999]}', b"\xff\xfe{",
                         '{"by": "\ud800"}'.encode("utf-8", "surrogatepass"), b'{"ids": [1], "by": "a\\u0000"}']),
        st.binary(max_size=200),
    )


def path_segments() -> st.SearchStrategy[str]:
    """A path segment where an id (or ``latest``) is expected, percent-encoded."""
    return st.one_of(st.sampled_from(NASTY_TEXT).map(lambda text: encoded(text.encode("utf-8", "surrogatepass"))),
                     st.sampled_from(NASTY_INTS).map(str), st.integers(-(2**70), 2**70).map(str),
                     hostile_bytes(30).map(encoded)).filter(bool)


@dataclass(frozen=True)
class AdminRequest:
    """One request, transport-neutral: ``path`` and ``query`` are percent-encoded already."""

    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


def auth_headers(admin_token: str, *, valid: bool) -> st.SearchStrategy[dict[str, str]]:
    """The admin token (header or Bearer); or (``valid=False``) none, a wrong one, or the right one misplaced."""
    if valid:
        return st.sampled_from([{ADMIN_TOKEN_HEADER: admin_token}, {"Authorization": f"Bearer {admin_token}"}])
    return st.one_of(
        st.just({}),
        st.just({"Authorization": f"Basic {admin_token}"}),
        st.just({"X-Webhook-Token": admin_token}),
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0xFF), min_size=1, max_size=40).filter(
            lambda token: token != admin_token).map(lambda token: {ADMIN_TOKEN_HEADER: token}),
    )


@st.composite
def admin_requests(draw, admin_token: str, *, authenticated: bool = True) -> AdminRequest:
    """A request to one of the admin routes (dead letters, status, DailyUp imports), with the token or without."""
    headers = draw(auth_headers(admin_token, valid=authenticated))
    route = draw(st.sampled_from(["status", "list", "show", "replay", "discard", "imports", "import", "table"]))
    query = draw(query_strings())
    if route in ("replay", "discard"):
        content_type = draw(st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                                             "application/json; charset=utf-16", ""]))
        if content_type:
            headers = {**headers, "Content-Type": content_type}
        return AdminRequest("POST", f"/admin/dead-letters/{route}", query, headers, draw(json_bodies()))
    path = {
        "status": "/admin/status",
        "list": "/admin/dead-letters",
        "show": f"/admin/dead-letters/{draw(path_segments())}",
        "imports": "/dailyup/imports",
        "import": f"/dailyup/imports/{draw(path_segments())}",
        "table": f"/dailyup/imports/{draw(path_segments())}/"
                 f"{draw(st.one_of(st.sampled_from(['kunden', 'vertraege', 'sparten', 'errors']), path_segments()))}.csv",
    }[route]
    return AdminRequest("GET", path, query, headers)


def problems(status: int, content_type: str, body: bytes, elapsed: float, *, max_seconds: float,
             allowed_5xx: tuple[int, ...] = (503,)) -> list[str]:
    """What is wrong with an answer: a 5xx (but those allowed), a non-JSON error or API answer, too slow."""
    found = []
    if status >= 500 and status not in allowed_5xx:
        found.append(f"status {status}")
    if elapsed > max_seconds:
        found.append(f"took {elapsed:.2f} s (limit {max_seconds} s)")
    csv = status == 200 and content_type.startswith("text/csv")
    if not csv:
        if not content_type.startswith("application/json"):
            found.append(f"content type {content_type!r}")
        else:
            try:
                data = json.loads(body)
            except ValueError:
                found.append("body is not JSON")
            else:
                if status >= 400 and not (isinstance(data, dict) and isinstance(data.get("error"), str)
                                          and isinstance(data.get("message"), str)):
                    found.append(f"error body without error/message: {body[:200]!r}")
    return found
