"""Every api/*.py is a Vercel function: loaded by path in a fresh interpreter, it has an `app`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
API_FILES = sorted(p for p in (ROOT / "api").glob("*.py") if not p.name.startswith("_"))

LOADER = """
import importlib.util, sys, json
spec = importlib.util.spec_from_file_location("entry", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
app = getattr(module, "app")
import inspect
print(json.dumps({"callable": callable(app), "asgi": inspect.iscoroutinefunction(
    getattr(app, "__call__", None)), "routers": len(getattr(module, "routers", ()))}))
"""


def test_there_are_entry_points() -> None:
    assert API_FILES


@pytest.mark.parametrize("path", API_FILES, ids=lambda p: p.name)
def test_each_api_file_exports_an_asgi_app_without_any_environment(path: Path) -> None:
    # No DATABASE_URL or secrets: importing must neither need settings nor connect anywhere.
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", LOADER, str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert '"callable": true' in out.stdout and '"asgi": true' in out.stdout
