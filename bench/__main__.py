"""Run every benchmark in this package (modules not starting with `_`), one after the other.

Each runs in its own interpreter, as `python -m bench.<name>` would: a benchmark's process-wide
state (the simulated AWS, the composition root, the log level it sets) cannot leak into the
next, and one that fails is reported without stopping the others.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path


def main() -> int:
    names = sorted(
        m.name
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if not m.name.startswith("_")
    )
    failed = []
    for name in names:
        print(f"\n=== bench.{name} ===", flush=True)
        done = subprocess.run([sys.executable, "-m", f"bench.{name}"], check=False)
        if done.returncode != 0:
            print(f"bench.{name} exited with {done.returncode}", flush=True)
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
