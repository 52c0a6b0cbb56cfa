"""Fixtures of the read API tests: the local app (every api file's routers) and a client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from devstack.server import create_local_app
from shared.settings import Settings


@pytest.fixture(scope="session")
def local_app() -> FastAPI:
    return create_local_app()


@pytest.fixture
def client(settings: Settings, local_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(local_app) as c:
        yield c
