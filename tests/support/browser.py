"""Browser tests: the console served by the real local server, driven by Debian's Chromium.

- `console_url` (session): the real ASGI app behind the console's edge (devstack.server:
  public/ and every function, routed by vercel.json) served by uvicorn on a loopback port, with
  the test database; its address is `http://localhost:<port>` (a passkey's relying party is a
  domain: WebAuthn refuses an IP address).
- `browser` (package: tests/console and below): one headless Chromium for the browser tests
  (/usr/bin/chromium, Debian's package; Playwright's own download cannot work here), launched
  with the flags this machine needs (no sandbox as root; no background networking, which a
  closed network refuses).
- `console` (per test): a fresh browser context and page on that server, with a `Recorder`
  that sees every request, console message, uncaught error and Content-Security-Policy
  violation (the `securitypolicyviolation` event, reported through a binding, and Chromium's
  console messages). Requests to anything but the console's own origin are aborted and
  recorded. The test fails, at teardown, on any CSP violation, any request outside the
  console's origin, any script from another origin, or any uncaught page error.

`axe_violations(page)` runs axe-core (vendored under tests/vendor/, loaded through the DevTools
protocol so the page's CSP is not weakened for it); `VirtualAuthenticator.attach(page)` gives
the page a CDP virtual authenticator (CTAP2, internal transport, resident keys, user
verification) for the passkey pages.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import (
    Browser,
    BrowserContext,
    CDPSession,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    Route,
    sync_playwright,
)

from devstack.server import create_console_server
from shared.bootstrap import Deps
from tests.support.database import TestDatabase

ROOT = Path(__file__).resolve().parent.parent.parent
AXE = ROOT / "tests" / "vendor" / "axe-core-4.14.1" / "axe.min.js"
# Where the tests save their screenshots (git-ignored); README's copies are in docs/screenshots.
SCREENSHOTS = ROOT / "tests" / "console" / ".screenshots"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# The flags Chromium needs on these machines (shared notes: platform.md; the machine notes):
# without the background-networking ones it keeps trying hosts a closed network refuses.
CHROMIUM_FLAGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
]
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})


def chromium_path() -> str | None:
    """$CAO_CHROMIUM, else Debian's chromium."""
    explicit = os.environ.get("CAO_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    return shutil.which("chromium")


def launch_args() -> list[str]:
    args = list(CHROMIUM_FLAGS)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    return args


# --- the server -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def console_url(database: TestDatabase, local_app: FastAPI) -> Iterator[str]:
    """The console and every function on one loopback port, as `make demo` serves them. Each
    request runs with the dependencies installed at that moment (the test's `deps`)."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_console_server(local_app),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, name="console-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the console did not start"
        time.sleep(0.02)
    try:
        yield f"http://localhost:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# --- the browser ----------------------------------------------------------------------------------


# Package scope, not session: Playwright's sync API keeps an asyncio loop marked as running in
# the main thread while it is open, which later tests' own `asyncio.run`/`anyio.run` refuse
# ("Already running asyncio in this thread"). Imported by tests/console/conftest.py, these live
# for tests/console and everything under it: one browser for all the browser tests.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """One headless Chromium for the browser tests."""
    executable = chromium_path()
    if executable is None:
        pytest.fail(
            "Chromium is not installed: the browser tests need Debian's chromium package "
            "(`apt-get install -y chromium`; `make test` and .ci/run install it), or "
            "CAO_CHROMIUM=/path/to/chromium"
        )
    launched = playwright.chromium.launch(
        executable_path=executable, headless=True, args=launch_args()
    )
    yield launched
    launched.close()


@dataclass
class Recorder:
    """What a page did: its requests, console messages, uncaught errors, CSP violations, and
    the requests that were refused because they left the console's origin."""

    origin: str
    requests: list[tuple[str, str]] = field(default_factory=list)  # (resource type, url)
    console: list[tuple[str, str]] = field(default_factory=list)  # (type, text)
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def on_request(self, request: Request) -> None:
        self.requests.append((request.resource_type, request.url))

    def on_console(self, message: ConsoleMessage) -> None:
        self.console.append((message.type, message.text))
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.csp_violations.append(message.text)

    def on_violation(self, _source: Any, violation: str) -> None:
        self.csp_violations.append(violation)

    def on_route(self, route: Route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if (
            parts.scheme in {"data", "blob", "about"}
            or f"{parts.scheme}://{parts.netloc}" == self.origin
        ):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort("blockedbyclient")

    def third_party_scripts(self) -> list[str]:
        return [
            url
            for kind, url in self.requests
            if kind == "script" and not url.startswith(self.origin + "/")
        ]

    def problems(self) -> list[str]:
        problems = [f"CSP violation: {v}" for v in self.csp_violations]
        problems += [f"request outside the console's origin: {u}" for u in self.outside]
        problems += [f"third-party script: {u}" for u in self.third_party_scripts()]
        problems += [f"uncaught page error: {e}" for e in self.page_errors]
        return problems


# Reports every securitypolicyviolation event to the test (an init script: the browser injects
# it, the page's CSP does not apply to it).
_VIOLATION_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__caoCspViolation(
    `${e.effectiveDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`
  );
});
"""


@dataclass
class Console:
    """A test's page on the console, and what it recorded."""

    url: str
    context: BrowserContext
    page: Page
    recorder: Recorder

    def goto(self, path: str, status: int = 200) -> Page:
        response = self.page.goto(self.url + path)
        assert response is not None, path
        assert response.status == status, f"{path}: {response.status}"
        return self.page


def open_console(browser: Browser, url: str, **options: Any) -> Console:
    context = browser.new_context(service_workers="block", **options)
    recorder = Recorder(origin=url)
    context.route("**/*", recorder.on_route)
    context.expose_binding("__caoCspViolation", recorder.on_violation)
    context.add_init_script(script=_VIOLATION_LISTENER)
    page = context.new_page()
    page.on("request", recorder.on_request)
    page.on("console", recorder.on_console)
    page.on("pageerror", lambda error: recorder.page_errors.append(str(error)))
    return Console(url, context, page, recorder)


@pytest.fixture
def console(browser: Browser, console_url: str, deps: Deps) -> Iterator[Console]:
    """A fresh page on the console; the test fails on any CSP violation, request outside the
    console's origin, third-party script or uncaught page error."""
    opened = open_console(browser, console_url, viewport={"width": 1280, "height": 800})
    try:
        yield opened
        problems = opened.recorder.problems()
        assert not problems, "\n".join(problems)
    finally:
        opened.context.close()


# --- accessibility, screenshots, passkeys -------------------------------------------------------

SERIOUS = ("serious", "critical")


@functools.cache
def _axe_source() -> str:
    return AXE.read_text(encoding="utf-8")


def axe_violations(page: Page, impacts: tuple[str, ...] = SERIOUS) -> list[dict[str, Any]]:
    """axe-core's violations of the given impacts on the page as it is now (WCAG 2.x A/AA and
    best practices). axe is loaded through the DevTools protocol, which the page's CSP does not
    govern, so the policy under test is not weakened for it."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        cdp = page.context.new_cdp_session(page)
        try:
            loaded = cdp.send("Runtime.evaluate", {"expression": _axe_source()})
            assert "exceptionDetails" not in loaded, loaded
        finally:
            cdp.detach()
    result: dict[str, Any] = page.evaluate(
        """async () => {
            const r = await axe.run(document, {resultTypes: ["violations"]});
            return {violations: r.violations.map((v) => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
            }))};
        }"""
    )
    return [v for v in result["violations"] if v["impact"] in impacts]


def screenshot(page: Page, name: str) -> Path:
    """A PNG of the viewport in the git-ignored screenshots folder (the README shows copies
    from docs/screenshots/)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@dataclass
class VirtualAuthenticator:
    """A CDP virtual authenticator on a page: a platform authenticator (internal transport,
    CTAP2) with resident keys and user verification that always succeeds, as the passkey
    pages need; the credentials it holds can be read back."""

    cdp: CDPSession
    authenticator_id: str

    @classmethod
    def attach(cls, page: Page) -> VirtualAuthenticator:
        cdp = page.context.new_cdp_session(page)
        cdp.send("WebAuthn.enable", {"enableUI": False})
        added = cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "automaticPresenceSimulation": True,
                }
            },
        )
        return cls(cdp, str(added["authenticatorId"]))

    def credentials(self) -> list[dict[str, Any]]:
        answer = self.cdp.send(
            "WebAuthn.getCredentials", {"authenticatorId": self.authenticator_id}
        )
        return list(answer["credentials"])

    def add_credential(self, credential: dict[str, Any]) -> None:
        """Puts a credential read from `credentials()` (private key included) in this
        authenticator: a page that navigated gets a new one (the virtual environment is the
        document's), holding the passkey created earlier."""
        self.cdp.send(
            "WebAuthn.addCredential",
            {"authenticatorId": self.authenticator_id, "credential": credential},
        )

    def remove(self) -> None:
        self.cdp.send(
            "WebAuthn.removeVirtualAuthenticator", {"authenticatorId": self.authenticator_id}
        )
