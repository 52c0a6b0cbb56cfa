"""api/notices.py is a read path: loaded as Vercel would, it must load neither boto3 nor
botocore.session (only the bare botocore package, which Powertools' Logger imports)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import importlib, sys
importlib.import_module("api.notices")
print(sorted(m for m in sys.modules
             if m.split(".")[0] in {"boto3", "botocore", "s3transfer"} and m != "botocore"))
"""


def test_the_notices_function_loads_neither_boto3_nor_botocore_session() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
