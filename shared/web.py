"""The one factory that turns FastAPI routers into the ASGI `app` an `api/*.py` file exports.

It adds what every function needs and no router should repeat: the JSON error shape
`{"error": {"code", "message"}}` for every 4xx/5xx (validation errors name the field and the
reason, never the rejected value), a request body bound (413 before the body is read when the
length is declared, and while streaming when it is not), security headers, `Cache-Control:
no-store` on every response (several carry API keys or the ExternalId), a request id, one
structured log line per request, and error reporting (flushed after the response, off the event
loop). Plus the request dependencies: a database
connection per request and the authenticated caller.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.concurrency import contextmanager_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import auth, bootstrap, db, observability
from shared.bootstrap import Deps
from shared.errors import CaoError, ForbiddenError, RateLimitedError, UnavailableError
from shared.logs import get_logger
from shared.queue import Publisher
from shared.settings import Settings

MAX_BODY_BYTES = 256 * 1024
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

SECURITY_HEADERS = [
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]
# The policy of an HTML page (the trust pages a function renders; vercel.json sets the same on
# the static console in public/, tests/console holds the two equal): our own origin only, no
# inline script or style, no eval, no framing, no <base>, forms post to us.
PAGE_CSP = (
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
    "object-src 'none'"
)


class Body(BaseModel):
    """Base of every request body: unknown fields are refused, never silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    headers = {}
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra.pop("retry_after"))
    body: dict[str, Any] = {"error": {"code": code, "message": message, **extra}}
    return JSONResponse(body, status_code=status, headers=headers)


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
}


# Context pydantic fills from the input itself (a parser's complaint quotes the offending
# character: "invalid character: found `q` at 0"; a union tag; a timezone). `value_error` and
# `assertion_error` carry our own validators' messages, which never quote the input.
_INPUT_CONTEXT = ("error", "tag", "tz_actual", "attribute", "encoding_error")
_OWN_MESSAGES = frozenset({"value_error", "assertion_error"})


def _rule(err: Mapping[str, Any]) -> str:
    """pydantic's message for one error, cut before any part taken from the input."""
    msg = str(err.get("msg", "invalid"))
    if err.get("type") in _OWN_MESSAGES:
        return msg
    ctx = err.get("ctx") or {}
    for key in _INPUT_CONTEXT:
        quoted = str(ctx.get(key, ""))
        if quoted and quoted in msg:
            msg = msg[: msg.index(quoted)].rstrip(" ,:'`")
    return msg or "invalid"


_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}", re.ASCII)


def _location(err: Mapping[str, Any]) -> str:
    """Where the error is. An unknown field's name is the client's input: it is named only when
    it looks like a field name (`agency_id`), else by its parent."""
    parts = [p for p in err.get("loc", ()) if p != "body"]
    if err.get("type") == "extra_forbidden" and parts and not _FIELD_NAME.fullmatch(str(parts[-1])):
        parts = parts[:-1]
    return ".".join(str(p) for p in parts) or "body"


def _describe_validation(exc: RequestValidationError) -> tuple[str, list[dict[str, str]]]:
    fields = []
    for err in exc.errors()[:20]:
        # `input` is dropped, and so is any part of the message quoting it (see `_rule`).
        problem = _rule(err)
        if err.get("type") == "extra_forbidden":
            problem = "unknown field: send only the fields this endpoint documents"
        fields.append({"field": _location(err), "problem": problem[:200]})
    first = fields[0] if fields else {"field": "body", "problem": "invalid"}
    return f"{first['field']}: {first['problem']}", fields


async def _cao_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CaoError)
    if exc.status >= 500:
        get_logger().warning("request failed", extra={"error_code": exc.code})
    extra: dict[str, Any] = {}
    if isinstance(exc, RateLimitedError | UnavailableError) and exc.retry_after is not None:
        extra["retry_after"] = exc.retry_after
    return error_response(exc.status, exc.code, exc.message, **extra)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, fields = _describe_validation(exc)
    return error_response(422, "invalid_request", message, fields=fields)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "error")
    detail = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    response = error_response(exc.status_code, code, detail)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # Driver messages echo key values and hosts: only the class is logged, nothing is returned.
    if isinstance(exc, psycopg.OperationalError):
        get_logger().warning("database unavailable", extra={"error_class": type(exc).__name__})
        return error_response(
            503,
            "database_unavailable",
            "the database is unavailable; retry",
            retry_after=db.RETRY_AFTER_S,
        )
    return await _unexpected_error(request, exc)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    get_logger().error(
        "unhandled error", extra={"error_class": type(exc).__name__, "path": request.url.path}
    )
    report_exception(exc, path=request.url.path)
    return error_response(500, "internal_error", "internal error; it has been reported")


def report_exception(exc: BaseException, **tags: str) -> None:
    """Send an unexpected error to Sentry (a no-op when SENTRY_DSN is unset)."""
    observability.report(exc, **tags)


# The fields of the current request's log line; dependencies add to it (the agency, once the
# key is known). A mutable dict, so additions made in FastAPI's worker threads are seen here.
_request_log: ContextVar[dict[str, Any] | None] = ContextVar("cao_request_log", default=None)


def log_context(**fields: str) -> None:
    """Add keys to the current request's log line."""
    current = _request_log.get()
    if current is not None:
        current.update(fields)


class EdgeMiddleware:
    """Pure ASGI middleware: body bound, security headers, request id, one log line, and the
    Sentry flush after the response (shared.observability)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        started = time.perf_counter()
        fields: dict[str, Any] = {"request_id": request_id}
        token = _request_log.set(fields)
        status_holder = {"status": 0}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in {h for h, _ in SECURITY_HEADERS}
                ]
                headers.extend(_security_headers(headers))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with observability.deferred_flush() as flush_due:
            try:
                await self._dispatch(scope, receive, send_wrapper)
            except Exception as exc:  # noqa: BLE001 - answered and reported here
                # Handled here rather than by Starlette's outermost ServerErrorMiddleware, so
                # that its report is flushed with the request's, after the response.
                response = await _unexpected_error(Request(scope), exc)
                if not status_holder["status"]:
                    await response(scope, receive, send_wrapper)
            finally:
                _request_log.reset(token)
                get_logger().info(
                    "request",
                    extra={
                        **fields,
                        "method": scope.get("method"),
                        "path": scope.get("path"),
                        "status": status_holder["status"],
                        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    },
                )
                # After the response: what the request reported leaves before the invocation
                # ends, flushed in a worker thread so the event loop serves other requests.
                await observability.flush_deferred(flush_due)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = _declared_length(scope)
        refusal = cross_origin_refusal(scope)
        if refusal is not None:
            await error_response(403, "cross_origin", refusal)(scope, receive, send)
        elif declared is not None and declared > self.max_body_bytes:
            await self._too_large(scope, receive, send)
        elif declared is None and scope.get("method") in {"POST", "PUT", "PATCH", "DELETE"}:
            # No declared length (chunked): buffer up to the bound, then replay to the app.
            body = bytearray()
            more = True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    break
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > self.max_body_bytes:
                    await self._too_large(scope, receive, send)
                    break
            else:
                await self.app(scope, _replay(bytes(body)), send)
        else:
            await self.app(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413,
            "payload_too_large",
            f"the request body is larger than {self.max_body_bytes} bytes",
        )
        await response(scope, receive, send)


def cross_origin_refusal(scope: Scope) -> str | None:
    """Why a browser's unsafe request is refused at the edge, before any work: an `Origin`
    that is not ours, or a `Sec-Fetch-Site` other than same-origin (or none: typed by the user).
    Requests carrying neither (scripts, webhooks, crons, the queue) pass; a cookie-authenticated
    one is further held to a positive check and its CSRF token (`get_credential`)."""
    if scope.get("method") not in UNSAFE_METHODS:
        return None
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    origin = headers.get("origin")
    if origin is not None and not bootstrap.current().settings.allows_origin(origin):
        return "cross-origin request refused: changes are accepted from the console's origin only"
    site = headers.get("sec-fetch-site")
    if site is not None and site not in {"same-origin", "none"}:
        return "cross-site request refused: changes are accepted from the console's origin only"
    return None


def _security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """SECURITY_HEADERS; an HTML page gets PAGE_CSP (its stylesheet is ours) instead of the
    API's `default-src 'none'`."""
    html = any(
        k.lower() == b"content-type" and v.lower().startswith(b"text/html") for k, v in headers
    )
    if not html:
        return SECURITY_HEADERS
    return [
        (k, PAGE_CSP.encode() if k == b"content-security-policy" else v)
        for k, v in SECURITY_HEADERS
    ]


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def create_app(
    *routers: APIRouter, title: str = "CloudAgencyOps", openapi: bool = False
) -> FastAPI:
    """The ASGI app for a set of routers, with errors, limits, headers and logging attached.

    Deployed functions expose no docs (openapi=False); the local server composes every router
    into one app with its OpenAPI document.
    """
    app = FastAPI(
        title=title,
        version="1",
        openapi_url="/api/openapi.json" if openapi else None,
        docs_url="/api/docs" if openapi else None,
        redoc_url=None,
    )
    for router in routers:
        app.include_router(router)
    app.add_exception_handler(CaoError, _cao_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(psycopg.Error, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(EdgeMiddleware)
    if openapi:
        _document_error_shape(app)
    return app


_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


def _document_error_shape(app: FastAPI) -> None:
    """FastAPI documents its own 422 body (`HTTPValidationError`) on routes that declare no 422;
    ours is `{"error": {...}}`. Rewrite those responses so the document says what is sent
    (schemathesis checks every response against it)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        first = app.openapi_schema is None
        spec = build()
        if first:
            for item in spec.get("paths", {}).values():
                for operation in item.values():
                    response = operation.get("responses", {}).get("422", {})
                    for media in response.get("content", {}).values():
                        ref = media.get("schema", {}).get("$ref", "")
                        if ref.endswith("/HTTPValidationError"):
                            media["schema"] = _ERROR_SCHEMA
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


# ---- request dependencies -------------------------------------------------------------------


def get_deps() -> Deps:
    """The process's dependencies, from the composition root (shared.bootstrap)."""
    return bootstrap.current()


DepsDep = Annotated[Deps, Depends(get_deps)]


def get_settings(deps: DepsDep) -> Settings:
    return deps.settings


def get_now(deps: DepsDep) -> datetime:
    """The request's "now", from the composition root's clock."""
    return deps.clock()


def get_publisher(request: Request, deps: DepsDep) -> Publisher[Any]:
    """The sync queue's publisher (on Vercel: authenticated by the request's OIDC token)."""
    return deps.publisher(request.headers)


SettingsDep = Annotated[Settings, Depends(get_settings)]
Now = Annotated[datetime, Depends(get_now)]
PublisherDep = Annotated[Publisher[Any], Depends(get_publisher)]


async def get_conn(deps: DepsDep) -> AsyncIterator[db.Connection]:
    """The request's connection, from the instance's bounded pool: admitted on the event loop
    first (shared.bootstrap.Database.admitted), then checked out in a worker thread; 503 with
    Retry-After when none comes within the wait. It goes back to the pool as soon as the route
    returns, before the response is sent: a slow client never holds one (a streamed response
    reads through `deps.connection()` in short checkouts of its own)."""
    async with (
        deps.database.admitted(),
        contextmanager_in_threadpool(db.request_connection(deps.connection())) as conn,
    ):
        yield conn


Conn = Annotated[db.Connection, Depends(get_conn, scope="function")]


@dataclass(frozen=True, repr=False)
class Credential:
    """What a request authenticates with, checked for shape only: an API key (from the
    `Authorization` header) or a session token (from the `__Host-cao_session` cookie)."""

    key: str | None = None
    session: str | None = None

    def __repr__(self) -> str:
        return f"Credential(kind={'key' if self.key else 'session'})"


async def get_credential(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Credential:
    """The request's API key or session token, checked before anything opens a database
    connection (401 when neither is well-formed). A request with an `Authorization` header is
    authenticated by its key alone: the cookie is never read. A cookie-authenticated change
    (POST, PATCH, PUT, DELETE) must also come from our origin (`Origin` or `Sec-Fetch-Site:
    same-origin`) and carry the session's CSRF token (`X-CSRF-Token` or a `csrf_token` form
    field), else 403 before any work."""
    form_token = None
    if (
        authorization is None
        and request.method in UNSAFE_METHODS
        and "x-csrf-token" not in request.headers
        and request.headers.get("content-type", "").startswith(_FORM_TYPES)
    ):
        value = (await request.form()).get("csrf_token")
        form_token = value if isinstance(value, str) else None
    return credential_of(request, form_token)


def credential_of(request: Request, form_token: str | None = None) -> Credential:
    """`get_credential` for a request whose form (if any) was read: a route that authenticates
    only in some cases (registration: an enrolment token, or the signed-in user) calls it."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        return Credential(key=auth.bearer_key(authorization))
    token = auth.session_token(request.cookies.get(auth.SESSION_COOKIE))
    if token is None:
        auth.bearer_key(None)  # the 401 that says what to send
        raise AssertionError("unreachable")
    if request.method in UNSAFE_METHODS:
        if not _from_our_origin(request.headers):
            raise ForbiddenError(
                "a signed-in change must come from the console's own origin (Origin or "
                "Sec-Fetch-Site: same-origin)",
                code="cross_origin",
            )
        if not auth.csrf_matches(token, request.headers.get("x-csrf-token", form_token)):
            raise ForbiddenError(
                "missing or wrong CSRF token: send the csrf_token of GET /api/session as the "
                "X-CSRF-Token header",
                code="csrf_token",
            )
    return Credential(session=token)


def _from_our_origin(headers: Mapping[str, str]) -> bool:
    """Positively from an allowed origin (the edge already refused any other one)."""
    origin = headers.get("origin")
    if origin is not None:
        return bootstrap.current().settings.allows_origin(origin)
    return headers.get("sec-fetch-site") == "same-origin"


READ_METHODS = frozenset({"GET", "HEAD"})


def get_caller(
    request: Request,
    credential: Annotated[Credential, Depends(get_credential)],
    conn: Conn,
    now: Now,
) -> auth.Caller:
    # `credential` is declared before `conn`: FastAPI solves dependencies in order, so the
    # header or cookie is refused before the connection is opened. Routes list the caller
    # before `conn` for the same reason (tests/api/test_auth_before_db.py walks every route).
    # A read authenticates in the transaction of its query (shared.db.carry): 4 round trips
    # (begin, authenticate and set the tenant, the query, commit). A change authenticates in a
    # transaction of its own, so nothing is held open across what it does before writing
    # (AWS calls, for instance).
    carry = request.method in READ_METHODS
    if credential.key is not None:
        caller = auth.authenticate_key(conn, credential.key, carry=carry)
        log_context(agency_id=str(caller.agency_id), key_id=str(caller.key_id))
    else:
        assert credential.session is not None
        caller = auth.authenticate_session(conn, credential.session, now, carry=carry)
        log_context(agency_id=str(caller.agency_id), user_id=str(caller.user_id))
    return caller


def get_admin(caller: Annotated[auth.Caller, Depends(get_caller)]) -> auth.Caller:
    caller.require_admin()
    return caller


CallerDep = Annotated[auth.Caller, Depends(get_caller)]
AdminDep = Annotated[auth.Caller, Depends(get_admin)]

# Standard error responses for OpenAPI documentation of routes.
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing, unknown or revoked API key"},
    404: {"description": "not found for this agency"},
    422: {"description": "invalid request: the message names the field and the rule"},
}
