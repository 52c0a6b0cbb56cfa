"""Run every benchmark in this package (modules not starting with `_`), one after the other."""

from __future__ import annotations

import pkgutil
import runpy
import sys
from pathlib import Path


def main() -> int:
    names = sorted(
        m.name
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if not m.name.startswith("_")
    )
    for name in names:
        print(f"\n=== bench.{name} ===", flush=True)
        sys.argv = [f"bench.{name}"]
        try:
            runpy.run_module(f"bench.{name}", run_name="__main__")
        except SystemExit as done:  # each benchmark ends with its own verdict: go on
            if done.code not in (0, None):
                print(f"bench.{name} exited with {done.code}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
