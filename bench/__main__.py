"""Run every benchmark in this package (modules not starting with `_`), one after the other.

    python -m bench                          # all of them (make bench)
    python -m bench reads_latency -- 1M 5M   # the ones named, with these arguments
                                             # (make bench BENCH=reads_latency ARGS="1M 5M")

Each runs in its own interpreter, as `python -m bench.<name>` would: a benchmark's process-wide
state (the simulated AWS, the composition root, the log level it sets) cannot leak into the
next, and one that fails is reported without stopping the others.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    known = sorted(
        m.name
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if not m.name.startswith("_")
    )
    split = argv.index("--") if "--" in argv else len(argv)
    wanted, args = argv[:split], argv[split + 1 :]
    unknown = [n for n in wanted if n not in known]
    if unknown:
        print(f"no benchmark {', '.join(unknown)}; there are: {', '.join(known)}")
        return 2
    names = wanted or known
    failed = []
    for name in names:
        print(f"\n=== bench.{name} {' '.join(args)} ===", flush=True)
        done = subprocess.run([sys.executable, "-m", f"bench.{name}", *args], check=False)
        if done.returncode != 0:
            print(f"bench.{name} exited with {done.returncode}", flush=True)
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
