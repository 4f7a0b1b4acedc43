"""The worker's HTTP session: each call prepared on its own, with the session's headers, no cookies, no ~/.netrc."""
from __future__ import annotations

import json

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

    assert len(session.cookies) == 0
    assert all("Cookie" not in call["headers"] for call in seen)
    assert "Authorization" not in seen[0]["headers"] and "Authorization" not in seen[2]["headers"]
    assert seen[1]["headers"]["Authorization"] == "Bearer t"
