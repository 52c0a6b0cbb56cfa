"""Fixtures of the trust tests: an HTTP client on the trust function's app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api import trust
from shared.settings import Settings
from shared.web import create_app


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The trust function's routers, through the same factory as Vercel's."""
    with TestClient(create_app(*trust.routers)) as c:
        yield c
