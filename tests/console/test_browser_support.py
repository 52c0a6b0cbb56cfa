"""The browser fixture's own checks can fail: a CSP violation, a request outside the console's
origin and a third-party script are each caught (on a page of our own, served through the
browser's router at the console's origin with the console's CSP); the virtual authenticator
creates and uses a resident passkey at localhost."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Route
from playwright.sync_api import Error as PlaywrightError

from shared.web import PAGE_CSP
from tests.support.browser import Console, VirtualAuthenticator, open_console


@pytest.fixture
def bare(browser: Browser, console_url: str) -> Iterator[Console]:
    """A console page whose problems the test inspects itself (no failing teardown)."""
    opened = open_console(browser, console_url)
    yield opened
    opened.context.close()


def serve_test_page(console: Console, path: str, body: str) -> None:
    """`path` at the console's origin answers `body` with the pages' CSP (a page of our own)."""

    def handler(route: Route) -> None:
        route.fulfill(
            status=200,
            headers={"content-type": "text/html", "content-security-policy": PAGE_CSP},
            body=body,
        )

    console.page.route(console.url + path, handler)


def test_an_inline_script_under_the_pages_csp_is_recorded_as_a_violation(bare: Console) -> None:
    serve_test_page(bare, "/inline-test", "<!doctype html><title>t</title><script>1</script>")
    bare.goto("/inline-test")
    bare.page.wait_for_timeout(100)
    assert any("script-src" in v for v in bare.recorder.csp_violations), bare.recorder
    assert any(p.startswith("CSP violation") for p in bare.recorder.problems())


def test_a_script_from_another_origin_is_refused_and_recorded(bare: Console) -> None:
    serve_test_page(
        bare,
        "/cdn-test",
        '<!doctype html><title>t</title><script src="https://cdn.invalid/x.js"></script>',
    )
    bare.goto("/cdn-test")
    problems = bare.recorder.problems()
    assert "third-party script: https://cdn.invalid/x.js" in problems, problems


def test_a_request_outside_the_console_is_aborted_and_recorded(bare: Console) -> None:
    # A navigation (which `default-src` does not govern) leaving the console's origin: the
    # browser's router refuses it before any connection. (`.invalid` never resolves anyway.)
    bare.goto("/")
    with pytest.raises(PlaywrightError):
        bare.page.goto("http://outside.invalid/leak")
    assert bare.recorder.outside == ["http://outside.invalid/leak"]
    assert "request outside the console's origin: http://outside.invalid/leak" in (
        bare.recorder.problems()
    )


def test_a_clean_public_page_records_no_problem(bare: Console) -> None:
    bare.goto("/security")
    assert bare.recorder.problems() == []


def test_the_virtual_authenticator_creates_and_uses_a_resident_passkey(console: Console) -> None:
    page = console.goto("/")
    authenticator = VirtualAuthenticator.attach(page)
    created = page.evaluate(
        """async () => {
            const credential = await navigator.credentials.create({publicKey: {
                rp: {id: "localhost", name: "CloudAgencyOps"},
                user: {id: new Uint8Array([1, 2, 3, 4]), name: "ops@example.com",
                       displayName: "Ops"},
                challenge: crypto.getRandomValues(new Uint8Array(32)),
                pubKeyCredParams: [{type: "public-key", alg: -7}],
                authenticatorSelection: {residentKey: "required", userVerification: "required",
                                         authenticatorAttachment: "platform"},
            }});
            return {id: credential.id, type: credential.type,
                    attachment: credential.authenticatorAttachment};
        }"""
    )
    assert created["type"] == "public-key"
    assert created["attachment"] == "platform"
    [stored] = authenticator.credentials()
    assert stored["isResidentCredential"] is True
    assert stored["rpId"] == "localhost"

    # Sign-in with a discoverable credential: no allowCredentials, the authenticator chooses.
    asserted = page.evaluate(
        """async () => {
            const credential = await navigator.credentials.get({publicKey: {
                challenge: crypto.getRandomValues(new Uint8Array(32)),
                rpId: "localhost", userVerification: "required",
            }});
            return {id: credential.id,
                    user: Array.from(new Uint8Array(credential.response.userHandle))};
        }"""
    )
    assert asserted == {"id": created["id"], "user": [1, 2, 3, 4]}
    authenticator.remove()


def test_the_api_module_returns_json_and_throws_the_apis_error(console: Console) -> None:
    page = console.goto("/")
    answer = page.evaluate(
        """async () => {
            const { api, ApiError } = await import("/assets/js/api.js");
            const security = await api("/api/security");
            let refused;
            try {
                await api("/api/accounts");
            } catch (error) {
                refused = {isApiError: error instanceof ApiError, status: error.status,
                           code: error.code, message: error.message};
            }
            return {actions: security.role_actions, refused};
        }"""
    )
    assert answer["actions"] == [
        "ce:GetCostAndUsage",
        "cloudtrail:LookupEvents",
        "organizations:ListAccounts",
    ]
    refused = answer["refused"]
    assert refused["isApiError"] is True
    assert refused["status"] == 401
    assert refused["code"] == "unauthorized"
    assert refused["message"]
