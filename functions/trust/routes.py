"""Routes of the public trust documents (api/trust.py; /security, /subprocessors and
/.well-known/security.txt reach it through vercel.json rewrites). No API key, no database.

`/security` and `/subprocessors` answer a browser (`Accept` preferring text/html) with the
readable page (functions/trust/pages.py), anything else with the same JSON document as before.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Response
from fastapi.responses import HTMLResponse, PlainTextResponse

from functions.trust import pages, service
from functions.trust.schemas import SecurityDocument, SubprocessorsDocument
from shared.web import Now, SettingsDep

trust_router = APIRouter(tags=["trust"])


def public_url(settings: SettingsDep) -> str:
    return settings.get("CAO_PUBLIC_URL")


BaseUrl = Annotated[str, Depends(public_url)]
Accept = Annotated[str | None, Header(include_in_schema=False)]
# Documented on the pages that answer a browser with HTML.
HTML_TOO: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {"schema": {"type": "string"}}}}
}


def _page(html: str) -> HTMLResponse:
    # The body depends on Accept: caches must key on it.
    return HTMLResponse(html, headers={"Vary": "Accept"})


@trust_router.get("/subprocessors", response_model=SubprocessorsDocument, responses=HTML_TOO)
def get_subprocessors_page(response: Response, base_url: BaseUrl, accept: Accept = None) -> Any:
    """The canonical subprocessor list: HTML for a browser, else the JSON document."""
    response.headers["Vary"] = "Accept"
    document = service.subprocessors_document(base_url)
    if pages.wants_html(accept):
        return _page(pages.subprocessors_page(document.canonical_url))
    return document


@trust_router.get("/api/subprocessors")
def get_subprocessors(base_url: BaseUrl) -> SubprocessorsDocument:
    """The canonical subprocessor list, and the customer-controlled services we access."""
    return service.subprocessors_document(base_url)


@trust_router.get("/security", response_model=SecurityDocument, responses=HTML_TOO)
def get_security_page(response: Response, base_url: BaseUrl, accept: Accept = None) -> Any:
    """The security page: HTML for a browser, else the JSON document of /api/security."""
    response.headers["Vary"] = "Accept"
    if pages.wants_html(accept):
        return _page(pages.security_page())
    return service.security_document(base_url)


@trust_router.get("/api/security")
def get_security(base_url: BaseUrl) -> SecurityDocument:
    """Role policy, trust policy template, what we store and never store, how to report."""
    return service.security_document(base_url)


@trust_router.get(
    "/.well-known/security.txt",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}},
)
def get_security_txt(base_url: BaseUrl, now: Now) -> PlainTextResponse:
    """security.txt (RFC 9116)."""
    return PlainTextResponse(
        service.security_txt(base_url, now), media_type="text/plain; charset=utf-8"
    )
