"""Routes of the public trust documents (api/trust.py; /subprocessors and
/.well-known/security.txt reach it through vercel.json rewrites). No API key, no database."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from functions.trust import service
from functions.trust.schemas import SecurityDocument, SubprocessorsDocument
from shared.settings import get_settings
from shared.web import Now

trust_router = APIRouter(tags=["trust"])


def _base_url() -> str:
    return get_settings().get("CAO_PUBLIC_URL")


@trust_router.get("/subprocessors")
@trust_router.get("/api/subprocessors")
def get_subprocessors() -> SubprocessorsDocument:
    """The canonical subprocessor list, and the customer-controlled services we access."""
    return service.subprocessors_document(_base_url())


@trust_router.get("/api/security")
def get_security() -> SecurityDocument:
    """Role policy, trust policy template, what we store and never store, how to report."""
    return service.security_document(_base_url())


@trust_router.get(
    "/.well-known/security.txt",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}},
)
def get_security_txt(now: Now) -> PlainTextResponse:
    """security.txt (RFC 9116)."""
    return PlainTextResponse(
        service.security_txt(_base_url(), now), media_type="text/plain; charset=utf-8"
    )
