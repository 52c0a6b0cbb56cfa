"""This folder links roles in the simulated AWS: its `client` calls AWS as our cao-service user
(fixtures of tests/support/onboarding.py)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def aws_env(linking_env: dict[str, str]) -> dict[str, str]:
    return linking_env


@pytest.fixture
def client(linking_client: TestClient) -> TestClient:
    return linking_client
