"""The read functions must not load boto3 or botocore (cold-start budget): checked in a fresh
interpreter that imports each read function's module, as Vercel would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READ_FUNCTIONS = [
    "api.costs",
    "api.access",
    "api.runbooks",
    "api.audit",
    "api.accounts",
    "api.agency",
]
PROBE = """
import importlib, json, sys
out = {}
for name in sys.argv[1:]:
    importlib.import_module(name)
    out[name] = sorted(
        m for m in sys.modules if m.split(".")[0] in {"boto3", "botocore", "s3transfer"}
    )
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def loaded() -> dict[str, list[str]]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *READ_FUNCTIONS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, list[str]] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_read_functions_load_neither_boto3_nor_botocore(loaded: dict[str, list[str]]) -> None:
    assert loaded == {name: [] for name in READ_FUNCTIONS}
