"""The read functions load little (cold-start budget): checked in a fresh interpreter per read
function that imports its module, as Vercel would.

- none loads boto3 or botocore.session (AWS clients are imported inside the functions that need
  them): of the AWS SDK, only the top-level `botocore` package may be loaded, by Powertools'
  Logger (shared/logs.py), which registers a user-agent hook on it (~1 ms; no submodule);
- a one-domain function loads no other domain's package under functions/ (each domain is its
  own package, imported explicitly: nothing loads the others by name).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Each read function, and the domains (packages under functions/) it may load; None: not pinned
# here (functions that compose several domains' routers).
READ_FUNCTIONS: dict[str, set[str] | None] = {
    "api.costs": {"costs"},
    "api.access": {"access"},
    "api.runbooks": {"runbooks"},
    "api.audit": {"audit"},
    "api.accounts": None,
    "api.agency": None,
}
PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps({
    "aws": sorted(m for m in sys.modules if m.split(".")[0] in {"boto3", "botocore", "s3transfer"}),
    "domains": sorted({m.split(".")[1] for m in sys.modules if m.startswith("functions.")}),
}))
"""


@pytest.fixture(scope="module")
def loaded() -> dict[str, dict[str, list[str]]]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    probes = {
        name: subprocess.Popen(
            [sys.executable, "-c", PROBE, name],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in READ_FUNCTIONS
    }
    result: dict[str, dict[str, list[str]]] = {}
    for name, probe in probes.items():
        out, err = probe.communicate(timeout=60)
        assert probe.returncode == 0, err[-2000:]
        result[name] = json.loads(out.strip().splitlines()[-1])
    return result


# Of the AWS SDK, what a read function may load: the bare botocore package (Powertools' Logger
# imports it), none of its modules (botocore.session and the rest) and no boto3 or s3transfer.
ALLOWED_AWS = {"botocore"}


def test_read_functions_load_neither_boto3_nor_botocore_session(
    loaded: dict[str, dict[str, list[str]]],
) -> None:
    assert {name: set(found["aws"]) - ALLOWED_AWS for name, found in loaded.items()} == {
        name: set() for name in READ_FUNCTIONS
    }


@pytest.mark.parametrize(
    "name", [name for name, domains in READ_FUNCTIONS.items() if domains is not None]
)
def test_a_one_domain_read_function_loads_only_its_own_domain(
    loaded: dict[str, dict[str, list[str]]], name: str
) -> None:
    assert set(loaded[name]["domains"]) == READ_FUNCTIONS[name]
