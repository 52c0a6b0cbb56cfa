"""The runtime dependencies are declared where Vercel's builder reads them, and pinned.

Vercel's Python builder installs `[project].dependencies` from pyproject.toml whenever that file
exists and then ignores requirements.txt; pip (make test, make demo) installs requirements.txt.
A dependency in one list but not the other deploys functions that cannot import it, or tests a
set that production does not run.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[0-9][0-9A-Za-z.+-]*$")


def _normalised(requirement: str) -> str:
    name, _, version = requirement.partition("==")
    return f"{re.sub(r'[-_.]+', '-', name).lower()}=={version}"


def project_dependencies(root: Path = ROOT) -> list[str]:
    return list(tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"])


def requirements(root: Path = ROOT) -> list[str]:
    lines = (root / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_pyproject_and_requirements_declare_the_same_pinned_runtime_dependencies() -> None:
    declared = project_dependencies()
    assert declared, "pyproject.toml declares no runtime dependency: a Vercel build would be empty"
    assert sorted(map(_normalised, declared)) == sorted(map(_normalised, requirements()))


def test_every_runtime_dependency_is_pinned_exactly() -> None:
    for requirement in project_dependencies():
        assert _PIN.fullmatch(requirement), f"{requirement} is not pinned with =="


def test_the_comparison_notices_a_dependency_missing_from_pyproject(tmp_path: Path) -> None:
    text = (ROOT / "pyproject.toml").read_text().replace('  "fastapi==0.163.2",\n', "")
    (tmp_path / "pyproject.toml").write_text(text)
    (tmp_path / "requirements.txt").write_text((ROOT / "requirements.txt").read_text())
    assert sorted(map(_normalised, project_dependencies(tmp_path))) != sorted(
        map(_normalised, requirements(tmp_path))
    )
