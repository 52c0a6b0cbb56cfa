"""Dependencies are declared once (pyproject.toml), locked (uv.lock) and exported
(requirements*.txt), and the three agree.

Vercel's Python builder installs a committed uv.lock exactly (`uv sync --frozen --no-dev`,
read in @vercel/python 60.1.3): a dependency added to pyproject.toml without `make lock` never
reaches production, while pip (make test, make demo) installs requirements-dev.txt. These tests
fail until `make lock` has been run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from devstack import lockfile

ROOT = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[0-9][0-9A-Za-z.+-]*$")


def test_pyproject_uv_lock_and_requirements_agree() -> None:
    assert lockfile.disagreements(ROOT) == []


def test_every_declared_dependency_is_pinned_exactly() -> None:
    runtime, groups = lockfile.declared(ROOT)
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
    assert any("uv.lock was not made" in p for p in lockfile.disagreements(project_copy))


def test_a_dependency_removed_from_pyproject_without_relocking_is_noticed(
    project_copy: Path,
) -> None:
    text = (project_copy / "pyproject.toml").read_text()
    assert '  "fastapi==0.163.2",\n' in text
    (project_copy / "pyproject.toml").write_text(text.replace('  "fastapi==0.163.2",\n', ""))
    assert any("uv.lock was not made" in p for p in lockfile.disagreements(project_copy))


def test_a_requirements_file_edited_by_hand_is_noticed(project_copy: Path) -> None:
    path = project_copy / "requirements.txt"
    path.write_text(path.read_text().replace("fastapi==0.163.2", "fastapi==0.163.1"))
    assert any(
        "requirements.txt is not uv.lock's export" in p
        for p in lockfile.disagreements(project_copy)
    )


def test_a_lock_entry_missing_from_requirements_dev_is_noticed(project_copy: Path) -> None:
    path = project_copy / "requirements-dev.txt"
    path.write_text(re.sub(r"(?m)^pytest==.*$", "", path.read_text()))
    assert any("requirements-dev.txt" in p for p in lockfile.disagreements(project_copy))
