"""The console's generated static files: `python -m devstack.console_pages` writes them into
public/, `--check` says which differ (tests/console/test_static_files.py runs the check, like a
lock file: a router or template changed without regenerating fails the tests).

- public/openapi.json: the OpenAPI document of every api/*.py function's routers together
  (deployed functions serve no document of their own; the local server composes the same
  routers);
- public/docs.html (`/docs`): the API reference as plain HTML generated from that document: no
  script, so it runs under `default-src 'self'` and needs no viewer to vendor;
- public/index.html (`/`) and public/404.html (Vercel serves it for any unknown path): the
  site's layout (functions/trust/templates/base.html, the same as the trust pages').

Every template is rendered by Jinja2 with autoescape on. Development tooling only: the build
serves the files as they are checked in.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2

from devstack.server import all_routers
from functions.trust.pages import TEMPLATES as TRUST_TEMPLATES
from shared import policy
from shared.web import create_app

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = ROOT / "public"
HERE_TEMPLATES = Path(__file__).resolve().parent / "templates"
METHODS = ("get", "post", "put", "patch", "delete")
DESCRIPTION = (
    "Cost and access governance across an agency's client AWS accounts: the JSON API behind "
    "the console."
)

_env = jinja2.Environment(
    loader=jinja2.ChoiceLoader(
        [jinja2.FileSystemLoader(HERE_TEMPLATES), jinja2.FileSystemLoader(TRUST_TEMPLATES)]
    ),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def openapi_document() -> dict[str, Any]:
    """The whole API's OpenAPI document, as the local server builds it, titled for publishing."""
    app = create_app(*all_routers(), title="CloudAgencyOps API", openapi=True)
    app.description = DESCRIPTION
    return app.openapi()


# ---- the document as the template needs it ---------------------------------------------------

Token = dict[str, str]


def _anchor(*parts: str) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9]+", "-", p).strip("-").lower() for p in parts if p)


def _schema_id(name: str) -> str:
    return "schema-" + _anchor(name)


def type_tokens(schema: Mapping[str, Any] | None) -> list[Token]:  # noqa: PLR0911
    """A schema as words, with links to named schemas: `array of AccountOut`, `string or null`."""
    if not schema:
        return [{"text": "any", "href": ""}]
    if ref := schema.get("$ref"):
        name = str(ref).rsplit("/", 1)[-1]
        return [{"text": name, "href": "#" + _schema_id(name)}]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            out: list[Token] = []
            joiner = " and " if key == "allOf" else " or "
            for i, part in enumerate(schema[key]):
                if i:
                    out.append({"text": joiner, "href": ""})
                out += type_tokens(part)
            return out
    kind = schema.get("type")
    if kind == "array":
        return [{"text": "array of ", "href": ""}, *type_tokens(schema.get("items"))]
    if "enum" in schema:
        return [{"text": "one of " + ", ".join(map(str, schema["enum"])), "href": ""}]
    if "const" in schema:
        return [{"text": f"{schema['const']}", "href": ""}]
    text = str(kind or "object")
    if fmt := schema.get("format"):
        text += f" ({fmt})"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return [{"text": "map of ", "href": ""}, *type_tokens(schema["additionalProperties"])]
    return [{"text": text, "href": ""}]


def _paragraphs(text: str | None) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text or "") if p.strip()]


def _body(operation: Mapping[str, Any]) -> dict[str, Any] | None:
    body = operation.get("requestBody")
    if not body:
        return None
    contents: dict[str, dict[str, Any]] = body.get("content", {})
    media, content = next(iter(contents.items()), ("", {}))
    return {
        "media": media,
        "required": bool(body.get("required")),
        "type": type_tokens(content.get("schema")),
    }


def _responses(operation: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for status, response in operation.get("responses", {}).items():
        content = response.get("content", {})
        media = ", ".join(content)
        schema = next((c.get("schema") for c in content.values() if c.get("schema")), None)
        out.append(
            {
                "status": status,
                "description": response.get("description", ""),
                "type": type_tokens(schema) if schema else [],
                "media": media,
            }
        )
    return out


def reference(spec: Mapping[str, Any]) -> dict[str, Any]:
    """What docs.html renders: operations grouped by tag (in the document's order), schemas."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            tag = (operation.get("tags") or ["other"])[0]
            groups.setdefault(tag, []).append(
                {
                    "id": _anchor("op", method, path),
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("summary", ""),
                    "description": _paragraphs(operation.get("description")),
                    "parameters": [
                        {
                            "name": p["name"],
                            "location": p.get("in", ""),
                            "required": bool(p.get("required")),
                            "type": type_tokens(p.get("schema")),
                            "description": p.get("description", ""),
                        }
                        for p in operation.get("parameters", [])
                    ],
                    "body": _body(operation),
                    "responses": _responses(operation),
                }
            )
    schemas = []
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        required = set(schema.get("required", []))
        schemas.append(
            {
                "id": _schema_id(name),
                "name": name,
                "description": _paragraphs(schema.get("description")),
                "enum": [str(v) for v in schema.get("enum", [])],
                "properties": [
                    {
                        "name": field,
                        "required": field in required,
                        "type": type_tokens(prop),
                        "description": prop.get("description", ""),
                    }
                    for field, prop in schema.get("properties", {}).items()
                ],
            }
        )
    return {
        "info": {
            "description": spec.get("info", {}).get("description", ""),
            "version": spec.get("info", {}).get("version", ""),
        },
        "openapi_version": spec.get("openapi", ""),
        "groups": [
            {"id": _anchor("tag", tag), "name": tag.capitalize(), "operations": operations}
            for tag, operations in groups.items()
        ],
        "schemas": schemas,
    }


# ---- the files ---------------------------------------------------------------------------------


def render(template: str, **context: Any) -> str:
    """A template with the trust pages' context name for shared.policy (`p`)."""
    return _env.get_template(template).render(p=policy, **context)


# The static pages: public/ file -> (template in devstack/templates/, title, the navigation link
# it marks current). A new console page is a template (extending base.html, its script a module
# under public/assets/js/ in its `scripts` block) and one line here.
STATIC_PAGES: dict[str, tuple[str, str, str]] = {
    "index.html": ("index.html", "Cost and access governance", "/"),
    "404.html": ("404.html", "Page not found", ""),
    "signup.html": ("signup.html", "Create agency", ""),
    "login.html": ("login.html", "Sign in", ""),
    "app/onboarding.html": ("onboarding.html", "Onboarding", "/app/onboarding"),
}


def generated_files() -> dict[str, str]:
    """public/-relative path -> content, for every generated file."""
    spec = openapi_document()
    files = {
        "openapi.json": json.dumps(spec, indent=2, ensure_ascii=False) + "\n",
        "docs.html": render("docs.html", title="API reference", current="/docs", **reference(spec)),
    }
    for name, (template, title, current) in STATIC_PAGES.items():
        files[name] = render(template, title=title, current=current)
    return files


def stale(public: Path = PUBLIC) -> list[str]:
    """The generated files whose checked-in copy differs (or is missing)."""
    out = []
    for rel, content in generated_files().items():
        path = public / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            out.append(rel)
    return out


def write(public: Path = PUBLIC) -> list[str]:
    written = []
    for rel, content in generated_files().items():
        path = public / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            written.append(rel)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.console_pages", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report stale files (exit 1)")
    args = parser.parse_args(argv)
    if args.check:
        files = stale()
        for rel in files:
            print(f"public/{rel} is stale: run python -m devstack.console_pages", file=sys.stderr)
        return 1 if files else 0
    for rel in write():
        print(f"wrote public/{rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
