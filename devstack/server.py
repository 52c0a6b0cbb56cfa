"""The local server: every api/*.py function's routers composed into one ASGI app, and the
console's static files (public/) in front of it, routed by vercel.json as Vercel routes them.

Vercel serves each api file as its own function; locally (make demo, tests) one app serves
them all (`create_local_app`, whose OpenAPI document the tests and devstack.console_pages read),
and `ConsoleServer` puts vercel.json's clean URLs, headers and rewrites in front of it and
serves public/ (`create_console_server`: what `make demo` and the browser tests run). Discovery
is by file, like Vercel's: a new api file is served here with no change to this module.
"""

from __future__ import annotations

import importlib
import json
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.web import create_app

API_DIR = Path(__file__).resolve().parent.parent / "api"


def api_modules() -> dict[str, ModuleType]:
    """Every Vercel function module, by file stem (files starting with _ are skipped)."""
    return {
        path.stem: importlib.import_module(f"api.{path.stem}")
        for path in sorted(API_DIR.glob("*.py"))
        if not path.name.startswith("_")
    }


def all_routers() -> list[APIRouter]:
    routers: list[APIRouter] = []
    for module in api_modules().values():
        for router in getattr(module, "routers", ()):
            if router not in routers:
                routers.append(router)
    return routers


def create_local_app() -> FastAPI:
    return create_app(*all_routers(), title="CloudAgencyOps (local)", openapi=True)


# ---- the console, served exactly as Vercel serves it -------------------------------------------
#
# Vercel serves the static files of public/ from its CDN and the api/*.py functions, routed by
# vercel.json: cleanUrls (`/docs` is docs.html, `/docs.html` redirects to `/docs`), `headers`
# (the pages' CSP), then the filesystem, then `rewrites` (which reach a function or a file).
# `ConsoleServer` does the same locally, reading vercel.json (nothing is written twice), in the
# order of the routes `vercel build` writes to .vercel/output/config.json; `make deploy-check`
# compares its answers with the build's routes path by path (devstack/deploy_check.py).

ROOT = API_DIR.parent
PUBLIC_DIR = ROOT / "public"
VERCEL_JSON = ROOT / "vercel.json"
# Pages a function renders for a browser (the static ones are public/'s .html files).
FUNCTION_PAGES = ("/security", "/subprocessors")


def load_vercel_json(path: Path = VERCEL_JSON) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def path_pattern(source: str) -> re.Pattern[str]:
    """A vercel.json `source` as Vercel matches it (path-to-regexp: :name, :name*, :name+,
    :name?, and (regex) groups)."""
    out = ""
    for part in re.split(r"(/:\w+[*+?]?|:\w+[*+?]?|\(.*?\))", source):
        if not part:
            continue
        if part.startswith("/:") or part.startswith(":"):
            slash = "/" if part.startswith("/") else ""
            suffix = part[-1] if part[-1] in "*+?" else ""
            segment = "[^/]+"
            out += {
                "*": f"(?:{re.escape(slash)}{segment}(?:/{segment})*)?",
                "+": f"{re.escape(slash)}{segment}(?:/{segment})*",
                "?": f"(?:{re.escape(slash)}{segment})?",
                "": f"{re.escape(slash)}{segment}",
            }[suffix]
        elif part.startswith("("):
            out += part
        else:
            out += re.escape(part)
    return re.compile(f"^{out}/?$")


def public_files(public: Path = PUBLIC_DIR) -> set[str]:
    """public/-relative paths of every file in it."""
    return {str(p.relative_to(public)) for p in public.rglob("*") if p.is_file()}


def function_names(api_dir: Path = API_DIR) -> set[str]:
    """Vercel's function names (`api/<stem>`) of the api/*.py files."""
    return {f"api/{p.stem}" for p in api_dir.glob("*.py") if not p.name.startswith(("_", "."))}


@dataclass(frozen=True)
class Resolution:
    """Where a request path goes: a static file, a function, a redirect, or nothing (404).

    `target` is the public/-relative file, the function (`api/trust`), the redirect's Location,
    or the 404 page's file (empty when there is none); `headers` are vercel.json's `headers`
    that apply (a function's own headers win over them, as on Vercel)."""

    kind: str
    target: str
    status: int
    headers: Mapping[str, str]


class VercelRoutes:
    """vercel.json's routing of one request path, for the local server."""

    def __init__(self, config: Mapping[str, Any], files: set[str], functions: set[str]) -> None:
        self.clean_urls = bool(config.get("cleanUrls"))
        self.header_rules = [
            (path_pattern(rule["source"]), {h["key"]: h["value"] for h in rule["headers"]})
            for rule in config.get("headers", [])
        ]
        self.rewrites = [
            (path_pattern(rule["source"]), str(rule["destination"]).split("?", 1)[0])
            for rule in config.get("rewrites", [])
        ]
        self.files = files
        self.functions = functions

    def headers_for(self, path: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for pattern, headers in self.header_rules:
            if pattern.match(path):
                out.update(headers)
        return out

    def filesystem(self, path: str) -> tuple[str, str] | None:
        """(kind, target) of the file or function at `path`, as the build output names them."""
        rel = path.lstrip("/")
        if rel.endswith("/"):
            return None
        candidates = [rel or "index.html"]
        if self.clean_urls and rel:
            candidates.append(rel + ".html")
        for candidate in candidates:
            if candidate in self.files:
                return "static", candidate
        if rel in self.functions:
            return "function", rel
        return None

    def resolve(self, path: str) -> Resolution:  # noqa: PLR0911 - one return per outcome
        if self.clean_urls:
            if m := re.match(r"^/(?:(.+)/)?index(?:\.html)?/?$", path):
                return Resolution("redirect", "/" + (m.group(1) or ""), 308, {})
            if m := re.match(r"^/(.*)\.html/?$", path):
                return Resolution("redirect", "/" + m.group(1), 308, {})
            if m := re.match(r"^/api/(.+)\.py/?$", path):
                return Resolution("redirect", "/api/" + m.group(1), 308, {})
        headers = self.headers_for(path)
        if hit := self.filesystem(path):
            return Resolution(hit[0], hit[1], 200, headers)
        for pattern, destination in self.rewrites:
            if pattern.match(path):
                if hit := self.filesystem(destination):
                    return Resolution(hit[0], hit[1], 200, headers)
                break
        if re.match(r"^/api(/.*)?$", path):
            return Resolution("not_found", "", 404, headers)
        return Resolution("not_found", "404.html" if "404.html" in self.files else "", 404, headers)


def content_type(name: str) -> str:
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if name.endswith(".js") or name.endswith(".mjs"):
        kind = "text/javascript"
    if kind.startswith("text/") or kind in {"application/json", "image/svg+xml"}:
        kind += "; charset=utf-8"
    return kind


class ConsoleServer:
    """The local edge: public/ and the composed functions, routed by vercel.json.

    `passthrough` path prefixes go straight to the app (make demo's /demo/ routes, which are no
    part of the product)."""

    def __init__(
        self,
        app: ASGIApp,
        public: Path = PUBLIC_DIR,
        config: Mapping[str, Any] | None = None,
        passthrough: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.public = public
        self.routes = VercelRoutes(
            config if config is not None else load_vercel_json(),
            public_files(public),
            function_names(),
        )
        self.passthrough = passthrough

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(self.passthrough or ("\0",)):
            await self.app(scope, receive, send)
            return
        found = self.routes.resolve(path)
        if found.kind == "function":
            await self.app(scope, receive, _with_headers(send, found.headers))
        elif found.kind == "redirect":
            await _respond(send, 308, {"location": found.target}, b"")
        elif found.kind == "static" and scope.get("method") not in {"GET", "HEAD"}:
            await _respond(send, 405, {**found.headers, "allow": "GET, HEAD"}, b"")
        elif found.kind == "static" or found.target:
            body = (self.public / found.target).read_bytes()
            headers = {
                **found.headers,
                "content-type": content_type(found.target),
                "cache-control": "public, max-age=0, must-revalidate",
            }
            await _respond(
                send, found.status, headers, b"" if scope.get("method") == "HEAD" else body
            )
        else:
            await _respond(
                send, 404, {**found.headers, "content-type": "text/plain"}, b"404: NOT_FOUND\n"
            )


def _with_headers(send: Send, headers: Mapping[str, str]) -> Send:
    """vercel.json's headers under the function's own: a header the function sets wins."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            own = {k.lower() for k, _ in message.get("headers", [])}
            extra = [
                (k.lower().encode(), v.encode())
                for k, v in headers.items()
                if k.lower().encode() not in own
            ]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped


async def _respond(send: Send, status: int, headers: Mapping[str, str], body: bytes) -> None:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def create_console_server(app: ASGIApp | None = None, **options: Any) -> ConsoleServer:
    """The whole product as `make demo` and the browser tests serve it on one port."""
    return ConsoleServer(app if app is not None else create_local_app(), **options)
