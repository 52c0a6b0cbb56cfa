"""Routes of the public trust documents (api/trust.py; /subprocessors and
/.well-known/security.txt reach it through vercel.json rewrites). No API key, no database."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from functions.trust import service
from functions.trust.schemas import SecurityDocument, SubprocessorsDocument
from shared.web import Now, SettingsDep

trust_router = APIRouter(tags=["trust"])


def public_url(settings: SettingsDep) -> str:
    return settings.get("CAO_PUBLIC_URL")


BaseUrl = Annotated[str, Depends(public_url)]


@trust_router.get("/subprocessors")
@trust_router.get("/api/subprocessors")
def get_subprocessors(base_url: BaseUrl) -> SubprocessorsDocument:
    """The canonical subprocessor list, and the customer-controlled services we access."""
    return service.subprocessors_document(base_url)


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
