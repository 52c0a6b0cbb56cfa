"""People tests run as a browser would: an `https://` client of the local app (so the Secure
cookie is kept), an `Origin` on every change, the CSRF token once signed in, and the software
authenticator of tests/support/authenticator.py."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shared.settings import Settings
from tests.support.authenticator import SoftAuthenticator

ORIGIN = "https://cloudagencyops.com"  # CAO_PUBLIC_URL's default: the RP ID is its host
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def new_address() -> str:
    """A source address of its own, so rate-limit windows never collide between tests."""
    return f"2001:db8:{secrets.randbelow(65535):x}:{secrets.randbelow(65535):x}::1"


@dataclass
class Browser:
    """One browser: its cookie jar, its authenticator, its address and its CSRF token."""

    http: TestClient
    authenticator: SoftAuthenticator = field(default_factory=SoftAuthenticator)
    address: str = field(default_factory=new_address)
    csrf: str | None = None
    origin: str = ORIGIN

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"X-Real-IP": self.address, **kwargs.pop("headers", {})}
        if method.upper() in UNSAFE:
            headers.setdefault("Origin", self.origin)
            if self.csrf:
                headers.setdefault("X-CSRF-Token", self.csrf)
        return self.http.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    @property
    def cookie(self) -> str | None:
        return self.http.cookies.get("__Host-cao_session")

    # ---- flows ------------------------------------------------------------------------------

    def sign_up(self, name: str | None = None) -> dict[str, Any]:
        tag = secrets.token_hex(4)
        r = self.post(
            "/api/agencies",
            json={
                "name": name or f"Agency {tag}",
                "contact_email": f"ops+{tag}@example.com",
                "admin": {"name": f"Admin {tag}", "email": f"admin+{tag}@example.com"},
            },
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    def enrol(self, token: str, name: str = "Laptop") -> httpx.Response:
        options = self.post("/api/passkeys/registration/options", json={"enrolment_token": token})
        assert options.status_code == 200, options.text
        credential = self.authenticator.create(options.json()["options"], self.origin)
        r = self.post(
            "/api/passkeys/registration",
            json={"enrolment_token": token, "credential": credential, "name": name},
        )
        if r.status_code == 201:
            self.refresh()
        return r

    def sign_in_options(self) -> dict[str, Any]:
        r = self.post("/api/session/options")
        assert r.status_code == 200, r.text
        options: dict[str, Any] = r.json()["options"]
        return options

    def sign_in(self, **bend: Any) -> httpx.Response:
        assertion = self.authenticator.get(self.sign_in_options(), self.origin, **bend)
        return self.submit_assertion(assertion)

    def submit_assertion(self, assertion: dict[str, Any]) -> httpx.Response:
        self.csrf = None
        r = self.post("/api/session", json={"credential": assertion})
        if r.status_code == 200:
            self.csrf = r.json()["csrf_token"]
        return r

    def refresh(self) -> dict[str, Any]:
        r = self.get("/api/session")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        self.csrf = body["csrf_token"]
        return body


@pytest.fixture
def open_browser(settings: Settings, local_app: FastAPI) -> Iterator[Any]:
    """A factory of browsers (each its own cookie jar), all closed after the test."""
    clients: list[TestClient] = []

    def make() -> Browser:
        client = TestClient(local_app, base_url=ORIGIN, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return Browser(client)

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@dataclass
class Admin:
    browser: Browser
    signup: dict[str, Any]

    @property
    def agency_id(self) -> str:
        return str(self.signup["agency_id"])

    @property
    def key_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.signup['api_key']}"}


@pytest.fixture
def admin(open_browser: Any) -> Admin:
    """A signed-up agency whose first admin enrolled a passkey and is signed in."""
    browser = open_browser()
    signup = browser.sign_up()
    r = browser.enrol(signup["enrolment"]["token"])
    assert r.status_code == 201, r.text
    return Admin(browser, signup)


def invite_and_join(admin: Admin, browser: Browser, role: str = "member") -> dict[str, Any]:
    """Invite a colleague, who accepts in `browser`, enrols and is signed in: their session."""
    tag = secrets.token_hex(4)
    r = admin.browser.post(
        "/api/invitations", json={"email": f"colleague+{tag}@example.com", "role": role}
    )
    assert r.status_code == 201, r.text
    token = r.json()["link"].split("#", 1)[1]
    accepted = browser.post("/api/invitations/accept", json={"token": token, "name": "Colleague"})
    assert accepted.status_code == 201, accepted.text
    assert browser.enrol(accepted.json()["token"]).status_code == 201
    return browser.refresh()
