"""This folder links roles in the simulated AWS: its `client` calls AWS as our cao-service user
(fixtures of tests/support/onboarding.py)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.fixture(autouse=True)
def _fresh_aws_session(shared_botocore_session: None) -> None:
    """Overrides the root fixture of this name: these tests register no event hooks on our
    botocore session, so they share one (see `shared_botocore_session`)."""


@pytest.fixture
def aws_env(linking_env: dict[str, str]) -> dict[str, str]:
    return linking_env


@pytest.fixture
def client(linking_client: TestClient) -> TestClient:
    return linking_client
