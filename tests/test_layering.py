"""The architecture's import rules, checked on the source: api -> functions -> shared."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _top(name: str) -> str:
    return name.split(".", maxsplit=1)[0]


@pytest.mark.parametrize("path", sources("functions"), ids=str)
def test_functions_never_import_aws_or_database_drivers_directly(path: Path) -> None:
    forbidden = {"boto3", "botocore", "psycopg", "psycopg_binary", "api", "devstack", "tests"}
    assert not {_top(m) for m in imported_modules(path)} & forbidden


@pytest.mark.parametrize("path", sources("shared"), ids=str)
def test_shared_never_imports_functions_or_api(path: Path) -> None:
    assert not {_top(m) for m in imported_modules(path)} & {"functions", "api", "devstack", "tests"}


@pytest.mark.parametrize("path", sources("api"), ids=str)
def test_api_files_stay_tiny_and_never_import_drivers(path: Path) -> None:
    assert not {_top(m) for m in imported_modules(path)} & {
        "boto3",
        "botocore",
        "psycopg",
        "devstack",
        "tests",
    }
    code_lines = [
        line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    assert len(code_lines) <= 25, f"{path.name} should only build its app"


@pytest.mark.parametrize(
    "path", [p for p in sources("shared") + sources("functions") + sources("api")], ids=str
)
def test_nothing_connects_at_import_time(path: Path) -> None:
    """Module level holds no call that connects: connect/create_client/Session()."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
            fn = call.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            assert name not in {"connect", "create_client", "client", "Session", "get_session"}, (
                f"{path.name}:{call.lineno} calls {name} at import time"
            )
