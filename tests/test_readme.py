"""The README documents what a user needs, and stays true to the code."""

from __future__ import annotations

import re
from pathlib import Path

from shared.settings import VARS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_the_environment_table_lists_exactly_the_variables_the_code_reads() -> None:
    section = README.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", section, flags=re.M))
    assert documented == set(VARS)


def test_the_two_commands_are_documented() -> None:
    assert "make demo" in README and "make test" in README


def test_every_security_promise_names_an_existing_test() -> None:
    section = README.split("## Security page promises", 1)[1].split("\n## ", 1)[0]
    paths = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", section)
    assert len(paths) >= 10
    root = Path(__file__).resolve().parent.parent
    for path, test in paths:
        source = (root / path).read_text()
        if test:
            assert f"def {test}(" in source, f"{path}::{test} does not exist"
