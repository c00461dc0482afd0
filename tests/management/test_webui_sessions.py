"""The web UI's login sessions over plain HTTP: the login form and its token, the session
cookie on the API, the CSRF token on every state-changing request, logout, and sessions
ended by a new password or a removed user; basic authentication is unchanged."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from kiltmq.broker import Broker

from .api import Api


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    with Broker(port=0, management_port=0) as running:
        yield running


@dataclass
class Browser:
    """Cookies kept between requests, redirects followed, as a browser does."""

    base: str

    def __post_init__(self) -> None:
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def send(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str, str]:
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers=headers or {}
        )
        try:
            with self.opener.open(request, timeout=30) as reply:
                return reply.status, reply.url, reply.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.url, error.read().decode()

    def token(self, page: str) -> str:
        found = re.search(r'(?:name="csrf" value|data-csrf)="([^"]+)"', page)
        assert found is not None, page
        return found.group(1)

    def login(self, user: str, password: str) -> str:
        """Log in through the form; the session's CSRF token."""
        _status, _url, form = self.send("GET", "/login")
        fields = f"csrf={self.token(form)}&username={user}&password={password}".encode()
        status, url, page = self.send("POST", "/login?next=%2Fqueues", fields)
        assert (status, url) == (200, self.base + "/queues"), page
        return self.token(page)


def test_pages_need_a_login_and_the_login_form_its_token(broker: Broker) -> None:
    browser = Browser(str(broker.management_url))
    status, url, _page = browser.send("GET", "/queues?name=x")
    assert status == 200 and url.startswith(browser.base + "/login?next=")
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["next"] == ["/queues?name=x"]
    refused = browser.send("POST", "/login", b"username=guest&password=guest")
    assert refused[0] == 403
    assert browser.send("GET", "/api/overview")[0] == 401
    _status, _url, form = browser.send("GET", "/login")
    wrong = f"csrf={browser.token(form)}&username=guest&password=nope".encode()
    status, _url, page = browser.send("POST", "/login", wrong)
    assert status == 401 and "Login failed" in page


def test_a_session_uses_the_api_and_changes_need_its_csrf_token(broker: Broker) -> None:
    browser = Browser(str(broker.management_url))
    csrf = browser.login("guest", "guest")
    assert browser.send("GET", "/api/whoami")[0] == 200
    status, _url, body = browser.send("PUT", "/api/queues/%2F/s1", b"{}")
    assert status == 403
    assert json.loads(body) == {"error": "forbidden", "reason": "CSRF token missing or wrong"}
    wrong = {"X-CSRF-Token": csrf + "x"}
    assert browser.send("PUT", "/api/queues/%2F/s1", b"{}", wrong)[0] == 403
    assert browser.send("PUT", "/api/queues/%2F/s1", b"{}", {"X-CSRF-Token": csrf})[0] == 201
    assert browser.send("DELETE", "/api/queues/%2F/s1")[0] == 403
    assert browser.send("DELETE", "/api/queues/%2F/s1", None, {"X-CSRF-Token": csrf})[0] == 204
    # Basic authentication needs no token, as before.
    assert Api(browser.base).put("/api/queues/%2F/s2", {}).status == 201
    # Logout needs the token too, then the session is gone.
    assert browser.send("POST", "/logout", b"csrf=nope")[0] == 403
    assert browser.send("GET", "/api/whoami")[0] == 200
    status, url, _page = browser.send("POST", "/logout", f"csrf={csrf}".encode())
    assert url == browser.base + "/login"
    assert browser.send("GET", "/api/whoami")[0] == 401


def test_a_new_password_or_a_removed_user_ends_the_session(broker: Broker) -> None:
    api = Api(str(broker.management_url))
    assert api.put("/api/users/flora", {"password": "skye", "tags": "management"}).status == 201
    browser = Browser(api.base)
    browser.login("flora", "skye")
    assert browser.send("GET", "/api/whoami")[0] == 200
    assert api.put("/api/users/flora", {"password": "portree", "tags": "management"}).status == 204
    assert browser.send("GET", "/api/whoami")[0] == 401
    browser.login("flora", "portree")
    assert api.delete("/api/users/flora").status == 204
    assert browser.send("GET", "/api/whoami")[0] == 401


def test_tags_decide_the_pages(broker: Broker) -> None:
    api = Api(str(broker.management_url))
    assert api.put("/api/users/rules", {"password": "pw", "tags": "policymaker"}).status == 201
    assert api.put("/api/users/plain", {"password": "pw", "tags": ""}).status == 201
    browser = Browser(api.base)
    browser.login("rules", "pw")
    assert browser.send("GET", "/admin/policies")[0] == 200
    assert browser.send("GET", "/admin/users")[0] == 403
    assert browser.send("GET", "/api/policies")[0] == 200
    assert browser.send("GET", "/api/definitions")[0] == 401
    # A user without a management tag cannot log in.
    other = Browser(api.base)
    _status, _url, form = other.send("GET", "/login")
    fields = f"csrf={other.token(form)}&username=plain&password=pw".encode()
    status, _url, page = other.send("POST", "/login", fields)
    assert status == 401 and "Not management user" in page


def test_policies_and_definitions_for_the_pages(broker: Broker) -> None:
    browser = Browser(str(broker.management_url))
    csrf = {"X-CSRF-Token": browser.login("guest", "guest"), "Content-Type": "application/json"}
    policy = {"pattern": "^ui-", "definition": {"max-length": 3}, "apply-to": "queues"}
    assert browser.send("PUT", "/api/policies/%2F/ui-cap", json.dumps(policy).encode())[0] == 403
    status, _url, _body = browser.send(
        "PUT", "/api/policies/%2F/ui-cap", json.dumps(policy).encode(), csrf
    )
    assert status == 201
    bad = {"pattern": "^ui-", "definition": {"max-length": "many"}}
    status, _url, body = browser.send(
        "PUT", "/api/policies/%2F/ui-bad", json.dumps(bad).encode(), csrf
    )
    assert status == 400 and json.loads(body)["error"] == "bad_request"
    listed = json.loads(browser.send("GET", "/api/policies")[2])
    assert [(p["name"], p["definition"]) for p in listed] == [("ui-cap", {"max-length": 3})]

    status, _url, body = browser.send("GET", "/api/definitions?download=d.json")
    exported = json.loads(body)
    assert status == 200 and exported["policies"][0]["name"] == "ui-cap"
    assert browser.send("DELETE", "/api/policies/%2F/ui-cap", None, csrf)[0] == 204
    assert json.loads(browser.send("GET", "/api/policies")[2]) == []
    # Uploading the export brings the policy back.
    upload = json.dumps(exported).encode()
    assert browser.send("POST", "/api/definitions", upload)[0] == 403
    assert browser.send("POST", "/api/definitions", upload, csrf)[0] == 204
    assert [p["name"] for p in json.loads(browser.send("GET", "/api/policies")[2])] == [
        "ui-cap"
    ]
    assert browser.send("POST", "/api/definitions", b"{nope", csrf)[0] == 400


_WITHOUT_JINJA2 = """
import sys, urllib.error, urllib.request
sys.modules["jinja2"] = None  # as if it were not installed
from kiltmq.broker import Broker
with Broker(port=0, management_port=0) as broker:
    request = urllib.request.Request(broker.management_url + "/api/overview",
                                     headers={"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="})
    print(urllib.request.urlopen(request).status)
    try:
        urllib.request.urlopen(broker.management_url + "/login")
    except urllib.error.HTTPError as error:
        print(error.code, error.read().decode())
"""


def test_the_api_runs_without_jinja2_and_the_pages_say_what_is_missing() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_JINJA2], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "200", "503 the web UI needs jinja2: pip install 'kiltmq[management]'"
    ]
