"""The worker's HTTP session: each call prepared on its own, with the session's headers, no cookies, no ~/.netrc."""
from __future__ import annotations

import gzip
import json
from http.cookiejar import DefaultCookiePolicy

import pytest
from werkzeug.wrappers import Request, Response

from simulators.server import ServerThread
from syncbridge.adapters.http import LimitedSession


@pytest.fixture
def echo():
    seen: list[dict] = []

    def app(environ, start_response):
        request = Request(environ)
        seen.append({"method": request.method, "path": request.path, "args": dict(request.args),
                     "headers": dict(request.headers), "body": request.get_data(as_text=True)})
        response = Response(json.dumps({"ok": True}), content_type="application/json")
        response.set_cookie("balancer", "node-7")
        return response(environ, start_response)

    with ServerThread(app) as server:
        yield server.url, seen


def test_a_call_sends_its_headers_params_and_json_with_the_sessions_headers(echo):
    url, seen = echo
    session = LimitedSession(pool=2, limit=1)

    answer = session.request("post", f"{url}/crm/v7/Contacts", params={"fields": "Email,Last_Name"},
                             headers={"Authorization": "Zoho-oauthtoken abc", "Accept": None},
                             json={"data": [{"Last_Name": "Muster"}]}, timeout=5)

    assert answer.status_code == 200 and answer.json() == {"ok": True}
    [call] = seen
    assert (call["method"], call["path"], call["args"]) == ("POST", "/crm/v7/Contacts", {"fields": "Email,Last_Name"})
    assert call["headers"]["Authorization"] == "Zoho-oauthtoken abc"
    assert call["headers"]["User-Agent"].startswith("python-requests/")      # the session's own headers
    assert "Accept" not in call["headers"]                                    # None takes one away
    assert call["headers"]["Content-Type"] == "application/json"
    assert json.loads(call["body"]) == {"data": [{"Last_Name": "Muster"}]}


def test_no_cookie_is_kept_or_sent_and_no_netrc_is_read(echo, tmp_path, monkeypatch):
    url, seen = echo
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    session = LimitedSession()

    session.get(f"{url}/first", timeout=5)
    session.get(f"{url}/second", headers={"Authorization": "Bearer t"}, timeout=5)
    session.get(f"{url}/third", timeout=5)
    session.post(f"{url}/token", data={"grant_type": "refresh_token"}, timeout=5)     # a form: requests prepares it

    assert len(session.cookies) == 0
    assert all("Cookie" not in call["headers"] for call in seen)
    assert all("Authorization" not in seen[n]["headers"] for n in (0, 2, 3))
    assert seen[1]["headers"]["Authorization"] == "Bearer t"


# ---------------------------------------------------------------- plain calls sent on the pool directly
PLAIN_URLS = [
    "http://127.0.0.1:8101/crm/v7/Contacts/5725767000000412001",
    "http://127.0.0.1:8102/mitarbeiterwebservice/v2/12345/kunden",
    "http://127.0.0.1:8102/mitarbeiterwebservice/v2/12345/kunden/5001234567/adressen/0",
    "https://www.zohoapis.eu/crm/v7/Contacts?fields=Email,Last_Name&page=2",
    "https://api.example/x/y_z~a!b$c&d'e(f)g*h+i,j;k=l:m@n/",
    "http://localhost/",
]
NOT_PLAIN_URLS = [
    "http://127.0.0.1:8101/crm/v7/Contacts/a%2Fb",         # percent-encoding: requests normalises it
    "http://127.0.0.1:8101/crm/v7/Contacts/a b",           # quoted by requests
    "http://127.0.0.1:8101/crm/v7/../Contacts",            # dot segments removed by requests
    "http://127.0.0.1:8101",                               # no path: requests adds "/"
    "HTTP://Example.COM/x",                                # upper case: lowered by requests
    "http://user:secret@127.0.0.1:8101/x",                 # user info: basic auth
    "http://127.0.0.1:08101/x",                            # leading zero of the port
    "http://127.0.0.1:8101/x#part",
    "http://127.0.0.1:8101/Zürich",
]


def test_a_plain_url_is_sent_as_requests_would_prepare_it_and_any_other_is_prepared_by_requests():
    import requests

    from syncbridge.adapters.http import _PLAIN_URL

    for url in PLAIN_URLS:
        prepared = requests.PreparedRequest()
        prepared.prepare_url(url, None)
        assert _PLAIN_URL.fullmatch(url) and "/." not in url and prepared.url == url, url
    for url in NOT_PLAIN_URLS:
        assert not _PLAIN_URL.fullmatch(url) or "/." in url, url


@pytest.fixture
def recorder():
    """A server that notes each request (as the socket saw it) and answers by its path: /redirect, /slow, else JSON."""
    import threading

    seen: list[dict] = []
    release = threading.Event()

    def app(environ, start_response):
        request = Request(environ)
        seen.append({"method": request.method, "uri": environ.get("REQUEST_URI") or environ.get("RAW_URI"),
                     "headers": sorted((k.lower(), v) for k, v in request.headers.items()),
                     "body": request.get_data()})
        if request.path.startswith("/redirect"):
            return Response("", status=302, headers={"Location": "/landed"})(environ, start_response)
        if request.path == "/slow":
            release.wait(5)
        if request.path == "/gzip":
            return Response(gzip.compress(json.dumps({"path": request.path}).encode()), content_type="application/json",
                            headers={"Content-Encoding": "gzip", "Retry-After": "7"})(environ, start_response)
        if request.path == "/chunked":     # no length: sent in chunks, read to the end
            return Response((part for part in ('{"path": ', '"/chunked"', "}")), content_type="application/json",
                            headers={"Retry-After": "7"})(environ, start_response)
        answer = Response(json.dumps({"path": request.path}), content_type="application/json",
                          headers={"Retry-After": "7"})
        answer.set_cookie("balancer", "node-7")
        return answer(environ, start_response)

    with ServerThread(app) as server:
        yield server.url, seen
        release.set()


CALLS = [
    ("GET", "/crm/v7/Contacts/1", {}),
    ("PUT", "/crm/v7/Contacts", {"json": {"data": [{"id": "1", "Kundennummer": "5001"}], "trigger": []}}),
    ("POST", "/kunden", {"json": {"Person": {"Nachname": "Müller"}}}),
    ("POST", "/kunden/1/empty", {}),
    ("DELETE", "/crm/v7/Contacts", {"params": {"ids": "1,2", "wf_trigger": "false"}}),
    ("GET", "/search", {"params": {"q": "Erika Muster", "size": 1}}),
    ("POST", "/oauth/token", {"data": {"grant_type": "refresh_token"}}),
    ("GET", "/gzip", {}),
    ("GET", "/chunked", {}),
]


def test_every_call_reaches_the_server_as_requests_sends_it_and_answers_alike(recorder):
    import requests

    url, seen = recorder
    limited, plain = LimitedSession(), requests.Session()
    plain.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))     # as ours: none kept
    for method, path, options in CALLS:
        answers = [session.request(method, url + path, headers={"Authorization": "Bearer t", "X-Dio-Request-Id": "r1"},
                                   timeout=5, **options) for session in (limited, plain)]
        ours, theirs = seen[-2:]
        assert ours == theirs, (method, path)
        assert [(a.status_code, a.reason, a.json(), a.headers["Retry-After"], a.encoding, a.url, a.history)
                for a in answers].count(
            (answers[1].status_code, answers[1].reason, answers[1].json(), "7", answers[1].encoding, answers[1].url,
             [])) == 2
    assert len(limited.cookies) == 0
    assert ("/crm/v7/Contacts/1" not in str(limited._hosts)) and (("http", url.split("//")[1]) in limited._hosts)


def test_redirects_are_followed_or_not_as_requests_does(recorder):
    url, seen = recorder
    session = LimitedSession()

    followed = session.get(f"{url}/redirect", timeout=5)
    assert followed.status_code == 200 and followed.json() == {"path": "/landed"}
    assert [r.status_code for r in followed.history] == [302] and followed.url == f"{url}/landed"

    held = session.put(f"{url}/redirect", json={"a": 1}, timeout=5, allow_redirects=False)
    assert held.status_code == 302 and held.is_redirect and held.next.url == f"{url}/landed"
    assert [call["uri"] for call in seen] == ["/redirect", "/landed", "/redirect"]


def test_a_timeout_and_a_refused_connection_raise_what_requests_raises(recorder):
    import socket

    import requests

    url, _ = recorder
    with pytest.raises(requests.ReadTimeout):
        LimitedSession().get(f"{url}/slow", timeout=0.2)
    with pytest.raises(requests.ReadTimeout):
        LimitedSession().get(f"{url}/slow", timeout=(2, 0.2))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]       # bound, not listening: refused
        for session in (LimitedSession(), requests.Session()):
            with pytest.raises(requests.ConnectionError) as caught:
                session.get(f"http://127.0.0.1:{port}/x", timeout=2)
            assert type(caught.value) is requests.ConnectionError


def test_a_call_goes_through_the_environments_proxy_with_its_full_url(recorder, monkeypatch):
    url, seen = recorder
    monkeypatch.setenv("HTTP_PROXY", url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    answer = LimitedSession().put("http://crm.example/crm/v7/Contacts", json={"data": []}, timeout=5)

    assert answer.status_code == 200
    assert [(call["method"], call["uri"]) for call in seen] == [("PUT", "http://crm.example/crm/v7/Contacts")]


def test_https_takes_the_environments_ca_bundle(monkeypatch, tmp_path):
    import requests

    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    session = LimitedSession()
    with pytest.raises(requests.ConnectionError):
        session.get("https://127.0.0.1:9/x", timeout=1)          # nothing listens on the discard port
    [host] = session._hosts.values()
    assert (host.pool.cert_reqs, host.pool.ca_certs) == ("CERT_REQUIRED", str(bundle))
