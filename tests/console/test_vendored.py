"""Every vendored file (public/vendor/<name>-<version>/, served with the console, and
tests/vendor/<name>-<version>/, test assets such as axe-core) is the one the manifest names:
taken from that npm package at that version (`npm pack <package>@<version>`), with its SHA-256,
and its package's licence beside it. Nothing is loaded from a CDN at run time."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
MANIFEST = ROOT / "tests" / "vendor" / "manifest.json"
FOLDERS = (ROOT / "public" / "vendor", ROOT / "tests" / "vendor")


def entries() -> list[dict[str, str]]:
    return list(json.loads(MANIFEST.read_text())["files"])


def vendored_files() -> set[str]:
    return {
        str(path.relative_to(ROOT))
        for folder in FOLDERS
        if folder.is_dir()
        for path in folder.rglob("*")
        if path.is_file() and path != MANIFEST
    }


def test_every_vendored_file_is_in_the_manifest_and_every_entry_exists() -> None:
    assert vendored_files() == {e["path"] for e in entries()}


def test_each_file_has_the_manifests_sha256() -> None:
    for entry in entries():
        digest = hashlib.sha256((ROOT / entry["path"]).read_bytes()).hexdigest()
        assert digest == entry["sha256"], f"{entry['path']} is not the file of the manifest"


def test_each_file_sits_in_its_packages_versioned_folder_with_the_licence() -> None:
    folders: dict[Path, set[str]] = {}
    for entry in entries():
        path = Path(entry["path"])
        assert path.parts[0] in {"public", "tests"} and path.parts[1] == "vendor", path
        assert path.parts[2] == f"{entry['package']}-{entry['version']}", path
        assert entry["from"].startswith("package/"), entry
        folders.setdefault(ROOT / Path(*path.parts[:3]), set()).add(path.name)
    for folder, names in folders.items():
        assert any(n.upper().startswith(("LICENSE", "LICENCE")) for n in names), folder
