"""Dependencies are declared once (pyproject.toml), locked (uv.lock) and exported
(requirements*.txt), and the three agree.

Vercel's Python builder installs from pyproject.toml and uv.lock (and ignores requirements.txt
when pyproject.toml exists); pip (make test, make demo) installs requirements-dev.txt. A
dependency added to pyproject.toml without `make lock` would deploy a set that the lock does not
pin, or test a set that production does not run: these tests fail until `make lock` is run.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from devstack import lockfile

ROOT = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[0-9][0-9A-Za-z.+-]*$")


def _canonical(requirement: str) -> str:
    name, extras = lockfile.requirement_name(requirement)
    _, _, version = requirement.partition("==")
    return name + (f"[{','.join(sorted(extras))}]" if extras else "") + "==" + version.strip()


def declared(root: Path = ROOT) -> tuple[list[str], dict[str, list[str]]]:
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    return list(pyproject["project"]["dependencies"]), dict(pyproject["dependency-groups"])


def disagreements(root: Path = ROOT) -> list[str]:
    """How pyproject.toml, uv.lock and requirements*.txt disagree (empty when they do not)."""
    problems: list[str] = []
    runtime, groups = declared(root)
    lock: dict[str, Any] = lockfile.load(root / "uv.lock")
    locked_runtime, locked_groups = lockfile.locked_inputs(lock)
    if sorted(map(_canonical, runtime)) != sorted(map(_canonical, locked_runtime)):
        problems.append("uv.lock was not made from pyproject.toml's dependencies: run make lock")
    for group, requirements in groups.items():
        if sorted(map(_canonical, requirements)) != sorted(
            map(_canonical, locked_groups.get(group, []))
        ):
            problems.append(f"uv.lock was not made from the {group} group: run make lock")
    for filename, expected in (
        ("requirements.txt", lockfile.runtime_packages(lock)),
        ("requirements-dev.txt", lockfile.dev_packages(lock)),
    ):
        exported = lockfile.pinned((root / filename).read_text().splitlines())
        if exported != expected:
            differ = sorted(set(exported.items()) ^ set(expected.items()))
            problems.append(f"{filename} is not uv.lock's export ({differ[:5]}): run make lock")
    return problems


def test_pyproject_uv_lock_and_requirements_agree() -> None:
    assert disagreements() == []


def test_every_declared_dependency_is_pinned_exactly() -> None:
    runtime, groups = declared()
    assert runtime, "pyproject.toml declares no runtime dependency: a Vercel build would be empty"
    for requirement in [*runtime, *(r for g in groups.values() for r in g)]:
        assert _PIN.fullmatch(requirement), f"{requirement} is not pinned with =="


def test_no_development_tool_is_a_runtime_dependency() -> None:
    lock = lockfile.load(ROOT / "uv.lock")
    runtime = lockfile.runtime_packages(lock)
    for tool in ("pytest", "moto", "mypy", "ruff", "hypothesis", "pgserver", "uvicorn"):
        assert tool not in runtime, f"{tool} would be installed into every Vercel function"


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    for name in ("pyproject.toml", "uv.lock", "requirements.txt", "requirements-dev.txt"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    return tmp_path


def test_a_dependency_added_to_pyproject_without_relocking_is_noticed(project_copy: Path) -> None:
    text = (project_copy / "pyproject.toml").read_text()
    (project_copy / "pyproject.toml").write_text(
        text.replace("dependencies = [\n", 'dependencies = [\n  "psycopg-pool==3.3.0",\n', 1)
    )
    assert any("uv.lock was not made" in p for p in disagreements(project_copy))


def test_a_dependency_removed_from_pyproject_without_relocking_is_noticed(
    project_copy: Path,
) -> None:
    text = (project_copy / "pyproject.toml").read_text()
    assert '  "fastapi==0.163.2",\n' in text
    (project_copy / "pyproject.toml").write_text(text.replace('  "fastapi==0.163.2",\n', ""))
    assert any("uv.lock was not made" in p for p in disagreements(project_copy))


def test_a_requirements_file_edited_by_hand_is_noticed(project_copy: Path) -> None:
    path = project_copy / "requirements.txt"
    path.write_text(path.read_text().replace("fastapi==0.163.2", "fastapi==0.163.1"))
    assert any("requirements.txt is not uv.lock's export" in p for p in disagreements(project_copy))


def test_a_lock_entry_missing_from_requirements_dev_is_noticed(project_copy: Path) -> None:
    path = project_copy / "requirements-dev.txt"
    path.write_text(re.sub(r"(?m)^pytest==.*$", "", path.read_text()))
    assert any("requirements-dev.txt" in p for p in disagreements(project_copy))
