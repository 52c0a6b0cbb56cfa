"""The sign-up, sign-in and onboarding pages in Chromium with a virtual passkey authenticator:
an agency is created and its admin's passkey registered from /signup, the API key is shown once,
the admin lands signed in on /app/onboarding (the IDs shown are the API's), signs out and back in
with the passkey; a page of /app without a session goes to /login; bad input shows the API's own
message and creates nothing. The RP ID is `localhost`: the app runs with CAO_PUBLIC_URL set to
the console's own URL."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import base_env
from tests.support.browser import Console, VirtualAuthenticator, axe_violations, screenshot
from tests.support.database import TestDatabase


@pytest.fixture
def env(database: TestDatabase, console_url: str) -> dict[str, str]:
    return {**base_env(database), "CAO_PUBLIC_URL": console_url}


def sign_up(
    console: Console, agency: str = "Acme Cloud Partners", email: str = "ada@acme-partners.example"
) -> tuple[Page, VirtualAuthenticator]:
    page = console.goto("/signup")
    authenticator = VirtualAuthenticator.attach(page)
    page.get_by_label("Agency name").fill(agency)
    page.get_by_label("Your name").fill("Ada Admin")
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Create agency").click()
    expect(page.get_by_role("status")).to_contain_text("Signed in")
    return page, authenticator


def test_sign_up_registers_a_passkey_shows_the_key_once_and_signs_in_again(
    console: Console,
) -> None:
    page, authenticator = sign_up(console)
    [passkey] = authenticator.credentials()
    assert passkey["rpId"] == "localhost" and passkey["isResidentCredential"]
    api_key = page.get_by_role("textbox", name="API key").input_value()
    assert len(api_key) > 20
    expect(page.get_by_role("button", name="Copy API key")).to_be_visible()
    # The key authenticates scripts: the API answers it for the agency just created.
    me = page.request.get(
        console.url + "/api/onboarding", headers={"Authorization": f"Bearer {api_key}"}
    )
    assert me.ok, me.text()
    material = me.json()

    page.get_by_role("link", name="Continue to onboarding").click()
    expect(page).to_have_url(console.url + "/app/onboarding")
    expect(page.locator("#who")).to_contain_text("ada@acme-partners.example")
    expect(page.locator("#who")).to_contain_text("admin")
    expect(page.locator("#external-id")).to_have_text(material["external_id"])
    expect(page.locator("#cao-account")).to_have_text(material["cao_account_id"])
    violations = axe_violations(page)
    assert violations == [], violations
    screenshot(page, "onboarding")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(console.url + "/login")
    assert page.request.get(console.url + "/api/session").status == 401
    violations = axe_violations(page)
    assert violations == [], violations
    screenshot(page, "login")

    # The virtual authenticator is the document's: the login page gets one with the passkey.
    VirtualAuthenticator.attach(page).add_credential(passkey)
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page).to_have_url(console.url + "/app/onboarding")
    expect(page.locator("#who")).to_contain_text("Ada Admin")


def test_the_signup_page_shows_the_apis_refusal_and_creates_nothing(console: Console) -> None:
    page = console.goto("/signup")
    authenticator = VirtualAuthenticator.attach(page)
    page.get_by_label("Agency name").fill("Acme")
    page.get_by_label("Your name").fill("Ada")
    page.get_by_label("Email").fill("not-an-email")
    page.get_by_role("button", name="Create agency").click()
    status = page.get_by_role("status")
    expect(status).to_contain_text("email")
    expect(page.get_by_role("textbox", name="API key")).to_be_hidden()
    assert authenticator.credentials() == []
    violations = axe_violations(page)
    assert violations == [], violations
    screenshot(page, "signup")


def test_an_app_page_without_a_session_goes_to_login_and_back(console: Console) -> None:
    page = console.goto("/app/onboarding")
    expect(page).to_have_url(console.url + "/login?next=%2Fapp%2Fonboarding")
    expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_visible()


def test_a_bad_role_arn_shows_the_apis_message_in_words(
    aws_env: dict[str, str], console: Console
) -> None:
    # aws_env first: the simulator's settings are in `env` before `console` installs them.
    page, _ = sign_up(console, "Bad Arn Agency", "bo@bad-arn.example")
    page.get_by_role("link", name="Continue to onboarding").click()
    page.get_by_label("Role ARN").fill("arn:aws:iam::12:role/nope")
    page.get_by_role("button", name="Connect account").click()
    outcome = page.locator("#outcome")
    expect(outcome).not_to_contain_text("Connecting")
    expect(outcome).to_contain_text("ARN")
    listed = page.request.get(console.url + "/api/accounts")
    assert listed.ok, listed.text()
    assert listed.json()["items"] == []
