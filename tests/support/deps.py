"""Tests run the product with their own dependencies, installed in the composition root.

`override(...)` replaces some of the current dependencies for a block (other settings, a
publisher that records, another clock), and puts the previous ones back after it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from shared import bootstrap
from shared.bootstrap import Deps
from shared.settings import Settings


@contextmanager
def override(**changes: Any) -> Iterator[Deps]:
    """The current dependencies with `changes` (fields of `Deps`) for the block."""
    with bootstrap.use(bootstrap.current().but(**changes)) as deps:
        yield deps


def with_settings(settings: Settings | Mapping[str, str]) -> Any:
    """`override` with these settings (or settings read from a mapping of variables)."""
    if not isinstance(settings, Settings):
        settings = Settings(settings)
    return override(settings=settings)


def with_publisher(publisher: Any) -> Any:
    """`override` with every publish going to `publisher` (a recorder, a local queue)."""
    return override(publisher_for=lambda _headers: publisher)
