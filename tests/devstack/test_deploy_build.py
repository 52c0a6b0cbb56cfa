"""`make deploy-check` fails when a runtime dependency is missing from the deployed bundle.

A temporary copy of the project loses `fastapi` from pyproject.toml and is relocked (as `make
lock` would); the check then builds it with the Vercel CLI and must report that the function
cannot import it. (The unmodified project passing is `make deploy-check` itself, in .ci/run.)
A dependency removed from pyproject.toml *without* relocking is caught before the build:
tests/test_dependencies.py and `lockfile.disagreements`.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from devstack import deploy_check as dc

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_makefile_installs_the_tool_versions_the_check_uses() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^VERCEL_VERSION := {re.escape(dc.VERCEL_VERSION)}$", makefile, re.M)
    assert re.search(rf"^UV_VERSION := {re.escape(dc.UV_VERSION)}$", makefile, re.M)


@pytest.mark.slow
def test_deploy_check_fails_when_a_runtime_dependency_is_removed(tmp_path: Path) -> None:
    if not (dc.DEFAULT_VERCEL.exists() and dc.DEFAULT_UV.exists()) and not os.environ.get("CI"):
        pytest.skip("the Vercel CLI and uv are not installed: `make test` installs them")
    project = tmp_path / "project"
    for rel in dc.project_files(ROOT):
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_bytes((ROOT / rel).read_bytes())
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert re.search(r'^  "fastapi==[^"]+",\n', text, re.M)
    pyproject.write_text(re.sub(r'^  "fastapi==[^"]+",\n', "", text, flags=re.M))
    relock = [str(dc.DEFAULT_UV), "lock", "--offline"]
    if subprocess.run(relock, cwd=project, capture_output=True, check=False).returncode != 0:
        subprocess.run(relock[:-1], cwd=project, capture_output=True, check=True)

    problems = dc.check(project, dc.DEFAULT_VERCEL, dc.DEFAULT_UV, only=["trust"])

    assert any(p.startswith("api/trust:") and "No module named 'fastapi'" in p for p in problems), (
        problems
    )
