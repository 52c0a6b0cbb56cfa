"""public/ holds what Vercel's CDN serves: the generated files are current (like a lock file),
no page carries inline script or style (the CSP would block them), every link of a page leads
somewhere, and vercel.json gives the pages the strict CSP."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from devstack import console_pages
from devstack.server import PUBLIC_DIR, VercelRoutes, function_names, public_files
from functions.trust import pages
from shared.web import PAGE_CSP

ROOT = Path(__file__).resolve().parent.parent.parent
VERCEL = json.loads((ROOT / "vercel.json").read_text())


# Pages the home page links to that the next console issue builds (on the people API).
class Markup(HTMLParser):
    """What a page loads and links, and any inline script or style in it."""

    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script" and not values.get("src"):
            self.inline.append("<script> without src")
        for name, value in attrs:
            if name == "style":
                self.inline.append(f"style attribute on <{tag}>")
            if name.startswith("on"):
                self.inline.append(f"{name} handler on <{tag}>")
            if name in {"href", "src", "action"} and value is not None:
                self.links.append(value)
            if value and value.strip().lower().startswith("javascript:"):
                self.inline.append(f"javascript: URL on <{tag}>")


def parsed(html: str) -> Markup:
    markup = Markup()
    markup.feed(html)
    return markup


def every_page() -> dict[str, str]:
    """Every HTML page the console serves: public/'s, and those the trust function renders."""
    out = {
        f"public/{name}": (PUBLIC_DIR / name).read_text()
        for name in sorted(public_files())
        if name.endswith(".html")
    }
    out["/security"] = pages.security_page()
    out["/subprocessors"] = pages.subprocessors_page("https://cloudagencyops.com/subprocessors")
    return out


def test_the_generated_files_are_current() -> None:
    # Regenerate with `python -m devstack.console_pages` after changing a router or template.
    assert console_pages.stale() == []


def test_the_published_openapi_document_covers_every_function() -> None:
    spec = json.loads((PUBLIC_DIR / "openapi.json").read_text())
    assert spec["info"]["title"] == "CloudAgencyOps API"
    for path in ("/api/accounts", "/api/costs", "/api/security", "/api/webhooks/polar"):
        assert path in spec["paths"], path


@pytest.mark.parametrize("name", sorted(every_page()))
def test_no_page_has_inline_script_or_style(name: str) -> None:
    assert parsed(every_page()[name]).inline == []


@pytest.mark.parametrize("name", sorted(every_page()))
def test_every_link_of_a_page_leads_to_a_file_a_function_or_an_https_site(name: str) -> None:
    routes = VercelRoutes(VERCEL, public_files(), function_names())
    for link in parsed(every_page()[name]).links:
        if link.startswith(("https://", "mailto:")) or link.startswith("#"):
            continue
        assert link.startswith("/") and not link.startswith("//"), f"{name}: {link}"
        path = link.split("#", 1)[0].split("?", 1)[0]
        found = routes.resolve(path)
        assert found.kind in {"static", "function"}, f"{name}: {link} -> {found}"


def test_the_pages_csp_is_strict_and_the_same_in_vercel_json_and_the_functions() -> None:
    [rule] = [r for r in VERCEL["headers"] if r["source"] == "/(.*)"]
    headers = {h["key"]: h["value"] for h in rule["headers"]}
    assert headers["Content-Security-Policy"] == PAGE_CSP
    directives = dict(d.strip().split(" ", 1) for d in PAGE_CSP.split(";"))
    assert directives == {
        "default-src": "'self'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
        "object-src": "'none'",
    }
    assert "unsafe" not in PAGE_CSP
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert VERCEL["cleanUrls"] is True
