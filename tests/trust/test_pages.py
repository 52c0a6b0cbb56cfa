"""The trust pages a browser gets (`/security`, `/subprocessors`): the whole security page,
generated from shared.policy, line for line; escaped; and the same JSON as before for anything
that does not ask for HTML."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from functions.trust import pages
from shared import policy
from shared.web import PAGE_CSP

HERE = Path(__file__).resolve().parent
# The seed security page, verbatim (test_the_page_copy_is_the_seed_page holds it to the
# handouts when they are beside the clone).
PAGE_COPY = HERE / "security_page.txt"
SEED = HERE.parent.parent.parent / "shared" / "seed" / "security-page.txt"
BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


class MainText(HTMLParser):
    """The text of <main>, as a reader sees it."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "main" or self.depth:
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.text.append(data)


def squeezed(text: str) -> str:
    """Whitespace is layout (the seed page is a text dump of the published HTML, which glues
    some words and splits JSON over lines): compare without it."""
    return re.sub(r"\s+", "", text)


def main_text(html: str) -> str:
    parser = MainText()
    parser.feed(html)
    return squeezed("".join(parser.text))


def seed_units(text: str) -> list[str]:
    """The seed page's lines; a table row counts cell by cell, its |---| line not at all."""
    units: list[str] = []
    for line in text.splitlines():
        if not line.strip() or re.fullmatch(r"\|[-|\s]*\|", line.strip()):
            continue
        if line.startswith("|"):
            units += [c.strip() for c in line.strip().strip("|").split("|")]
        elif line.startswith("- "):
            units.append(line[2:])
        else:
            units.append(line)
    return [squeezed(u) for u in units if u.strip()]


@pytest.mark.skipif(not SEED.exists(), reason="the handouts are not beside this clone")
def test_the_page_copy_is_the_seed_page() -> None:
    assert PAGE_COPY.read_text() == SEED.read_text()


def test_the_security_page_has_every_line_of_the_published_page_in_order() -> None:
    rendered = main_text(pages.security_page())
    at = 0
    for unit in seed_units(PAGE_COPY.read_text()):
        found = rendered.find(unit, at)
        assert found >= 0, f"not on the generated page (after position {at}): {unit[:120]}"
        at = found + len(unit)


def test_the_pages_follow_the_policy_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    # A subprocessor added to the constant is on both pages: nothing is written twice.
    added = policy.Processor("Acme Mail", "Transactional email", "EU", "https://acme.example/p")
    monkeypatch.setattr(policy, "SUBPROCESSORS", (*policy.SUBPROCESSORS, added))
    for html in (pages.security_page(), pages.subprocessors_page("https://x.example/s")):
        assert squeezed("Acme MailTransactional emailEU") in main_text(html)
        assert 'href="https://acme.example/p"' in html


def test_policy_text_is_escaped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy, "HOSTING", '<script>alert("x")</script> & more')
    html = pages.security_page()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; more" in html


def test_the_subprocessors_page_lists_both_tables_with_privacy_links() -> None:
    html = pages.subprocessors_page("https://cloudagencyops.com/subprocessors")
    text = main_text(html)
    for entry in (*policy.SUBPROCESSORS, *policy.CUSTOMER_SERVICES):
        assert squeezed(f"{entry.provider}{entry.purpose}{entry.region}") in text
        assert f'href="{entry.privacy}"' in html


@pytest.mark.parametrize("path", ["/security", "/subprocessors"])
def test_a_browser_gets_the_html_page_with_the_pages_csp(client: TestClient, path: str) -> None:
    response = client.get(path, headers=BROWSER)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == PAGE_CSP
    assert response.headers["vary"] == "Accept"
    assert response.text.startswith("<!doctype html>")


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "text/html;q=0.5, */*"])
@pytest.mark.parametrize(
    ("path", "api"), [("/security", "/api/security"), ("/subprocessors", "/api/subprocessors")]
)
def test_anything_else_gets_the_json_document(
    client: TestClient, path: str, api: str, accept: str | None
) -> None:
    response = client.get(path, headers={"accept": accept} if accept else {})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert (
        response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    )
    assert response.headers["vary"] == "Accept"
    assert response.json() == client.get(api).json()


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (None, False),
        ("", False),
        ("*/*", False),
        ("application/json", False),
        ("text/html", True),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
        ("application/json, text/html;q=0.9", False),
        ("text/html;q=0.2, application/json;q=0.1", True),
        ("text/*", True),
        ("text/html;q=0", False),
        ("text/html;q=bogus", False),
    ],
)
def test_html_is_chosen_only_when_preferred_to_json(accept: str | None, html: bool) -> None:
    assert pages.wants_html(accept) is html
