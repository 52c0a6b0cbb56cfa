"""The console's public pages in a real browser (Chromium): each renders its content with no CSP
violation, no request outside our origin and no third-party script (the `console` fixture fails
the test on any), passes axe-core with no serious or critical violation, fits a 360 px screen,
and is saved as a screenshot."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support.browser import Console, axe_violations, screenshot

# (path, expected status, accessible name of its main heading, screenshot name)
PAGES = [
    ("/", 200, "Cost and access governance across your clients' AWS accounts", "home"),
    ("/security", 200, "Security", "security"),
    ("/subprocessors", 200, "Sub-processors", "subprocessors"),
    ("/docs", 200, "API reference", "docs"),
    ("/no-such-page", 404, "Page not found", "not-found"),
]


@pytest.mark.parametrize(("path", "status", "heading", "name"), PAGES, ids=[p[0] for p in PAGES])
def test_each_public_page_renders_accessibly_under_the_strict_csp(
    console: Console, path: str, status: int, heading: str, name: str
) -> None:
    page = console.goto(path, status)
    expect(page.get_by_role("heading", level=1, name=heading)).to_be_visible()
    # The stylesheet applied (ours, from our origin): the layout is not the browser's default.
    assert page.evaluate("getComputedStyle(document.body).margin") == "0px"
    assert any(url.endswith("/assets/console.css") for _, url in console.recorder.requests)
    violations = axe_violations(page)
    assert violations == [], violations
    screenshot(page, name)


@pytest.mark.parametrize("path", [p[0] for p in PAGES])
def test_each_public_page_fits_a_360_px_screen(console: Console, path: str) -> None:
    page = console.page
    page.set_viewport_size({"width": 360, "height": 740})
    console.goto(path, 404 if path == "/no-such-page" else 200)
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= 360, f"{path} is {overflow} px wide at 360 px"


def test_the_home_page_leads_to_sign_in_and_to_creating_an_agency(console: Console) -> None:
    page = console.goto("/")
    expect(page.get_by_role("link", name="Sign in")).to_have_attribute("href", "/login")
    expect(page.get_by_role("link", name="Create agency")).to_have_attribute("href", "/signup")
    page.get_by_role("link", name="Security").first.click()
    expect(page).to_have_url(console.url + "/security")


def test_the_security_page_shows_the_policies_to_paste_and_links_the_subprocessors(
    console: Console,
) -> None:
    page = console.goto("/security")
    role_policy = page.get_by_label("Role policy JSON")
    expect(role_policy).to_contain_text('"ce:GetCostAndUsage"')
    expect(page.get_by_label("Trust policy JSON")).to_contain_text(
        "REPLACE-WITH-YOUR-AGENCY-EXTERNAL-ID"
    )
    page.get_by_role("main").get_by_role("link", name="/subprocessors").click()
    expect(page.get_by_role("heading", level=1, name="Sub-processors")).to_be_visible()
    expect(page.get_by_role("row", name="Sentry")).to_contain_text("Error tracking")


def test_the_api_reference_lists_every_operation_of_the_openapi_document(
    console: Console,
) -> None:
    page = console.goto("/docs")
    spec = console.page.request.get(console.url + "/openapi.json").json()
    operations = [
        f"{method.upper()} {path}"
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    shown = page.locator("article.operation h3").all_inner_texts()
    assert [" ".join(text.split()) for text in shown[: len(operations)]] == [
        " ".join(op.split()) for op in operations
    ]
    page.get_by_role("link", name="GET /api/costs").click()
    expect(page).to_have_url(console.url + "/docs#op-get-api-costs")
