"""What uv.lock pins: the packages each dependency set installs, read without uv.

`make lock` writes uv.lock from pyproject.toml and requirements*.txt from uv.lock (`uv export`).
Vercel's builder installs a committed uv.lock as it is (`uv sync --frozen --no-dev`), ignoring
pyproject.toml's list, so a stale lock deploys the wrong set. tests/test_dependencies.py and
devstack/deploy_check.py use `disagreements` to catch that, and deploy_check uses the closures
to know which packages must never reach a Vercel bundle.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

PROJECT = "cloudagencyops"


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> tuple[str, frozenset[str]]:
    """`psycopg[binary]==3.3.9 ; marker` -> ("psycopg", {"binary"})."""
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?", requirement)
    if not m:
        raise ValueError(f"not a requirement: {requirement!r}")
    extras = frozenset(normalise(e) for e in (m.group(2) or "").split(",") if e.strip())
    return normalise(m.group(1)), extras


def load(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def _packages(lock: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {normalise(p["name"]): p for p in lock.get("package", [])}


def project_metadata(lock: Mapping[str, Any]) -> dict[str, Any]:
    """The `[package.metadata]` uv recorded for our own project: the inputs it locked."""
    meta = _packages(lock)[PROJECT].get("metadata", {})
    return dict(meta)


def locked_inputs(lock: Mapping[str, Any]) -> tuple[list[str], dict[str, list[str]]]:
    """The runtime requirements and dependency groups uv.lock was made from, as specifiers."""

    def spec(entry: Mapping[str, Any]) -> str:
        extras = entry.get("extras") or []
        name = entry["name"] + (f"[{','.join(extras)}]" if extras else "")
        return name + entry.get("specifier", "")

    meta = project_metadata(lock)
    runtime = [spec(e) for e in meta.get("requires-dist", [])]
    groups = {g: [spec(e) for e in entries] for g, entries in meta.get("requires-dev", {}).items()}
    return runtime, groups


def closure(lock: Mapping[str, Any], roots: Iterable[str]) -> dict[str, str]:
    """name -> locked version of every package the requirements `roots` install (all markers)."""
    packages = _packages(lock)
    seen: dict[str, str] = {}
    todo: list[tuple[str, frozenset[str]]] = [requirement_name(r) for r in roots]
    done: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in done:
            continue
        done.add((name, extras))
        package = packages[name]
        if "version" in package:
            seen[name] = package["version"]
        deps = list(package.get("dependencies", []))
        for extra in extras:
            deps += package.get("optional-dependencies", {}).get(extra, [])
        for dep in deps:
            extras_of_dep = frozenset(normalise(e) for e in dep.get("extra", []))
            todo.append((normalise(dep["name"]), extras_of_dep))
    return seen


def runtime_packages(lock: Mapping[str, Any]) -> dict[str, str]:
    """What `uv export --no-dev` (and so Vercel's builder) installs."""
    runtime, _ = locked_inputs(lock)
    return closure(lock, runtime)


def dev_packages(lock: Mapping[str, Any]) -> dict[str, str]:
    """What the runtime set and every dependency group install together (requirements-dev.txt)."""
    runtime, groups = locked_inputs(lock)
    return closure(lock, [*runtime, *(r for g in groups.values() for r in g)])


def pinned(lines: Iterable[str]) -> dict[str, str]:
    """name -> version of a requirements file's `name==version` lines (comments, markers and
    `-r` includes ignored)."""
    out: dict[str, str] = {}
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement = line.split(";", 1)[0].strip()
        name, _ = requirement_name(requirement)
        _, _, version = requirement.partition("==")
        out[name] = version.strip()
    return out


def _canonical(requirement: str) -> str:
    name, extras = requirement_name(requirement)
    _, _, version = requirement.partition("==")
    return name + (f"[{','.join(sorted(extras))}]" if extras else "") + "==" + version.strip()


def declared(root: Path) -> tuple[list[str], dict[str, list[str]]]:
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    return list(pyproject["project"]["dependencies"]), dict(pyproject["dependency-groups"])


def disagreements(root: Path) -> list[str]:
    """How pyproject.toml, uv.lock and requirements*.txt disagree (empty when they do not)."""
    problems: list[str] = []
    runtime, groups = declared(root)
    lock = load(root / "uv.lock")
    locked_runtime, locked_groups = locked_inputs(lock)
    if sorted(map(_canonical, runtime)) != sorted(map(_canonical, locked_runtime)):
        problems.append("uv.lock was not made from pyproject.toml's dependencies: run make lock")
    for group, requirements in groups.items():
        if sorted(map(_canonical, requirements)) != sorted(
            map(_canonical, locked_groups.get(group, []))
        ):
            problems.append(f"uv.lock was not made from the {group} group: run make lock")
    for filename, expected in (
        ("requirements.txt", runtime_packages(lock)),
        ("requirements-dev.txt", dev_packages(lock)),
    ):
        exported = pinned((root / filename).read_text().splitlines())
        if exported != expected:
            differ = sorted(set(exported.items()) ^ set(expected.items()))
            problems.append(f"{filename} is not uv.lock's export ({differ[:5]}): run make lock")
    return problems
