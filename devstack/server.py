"""The local server: every api/*.py function's routers composed into one ASGI app.

Vercel serves each api file as its own function; locally (make demo, tests) one app serves
them all, with the OpenAPI document at /api/openapi.json. Discovery is by file, like Vercel's:
a new api file is served here with no change to this module.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from fastapi import APIRouter, FastAPI

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
