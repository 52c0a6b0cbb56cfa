"""Benchmark: the console's public pages through the local server, as a browser asks for them.

    python -m bench.console_pages [requests]     # default 200 per page

The real ASGI app behind the console's edge (devstack.server.create_console_server: public/
and every function, routed by vercel.json) on a loopback port (uvicorn), no database (these
pages need none). Each page is asked `requests` times in turn after 5 warm-up requests, with a
browser's Accept header; reported: bytes, latency p50/p95/max in milliseconds. On Vercel the
static pages come from the CDN; the figure that matters there is the trust function's render
(`/security`, `/subprocessors`), which this measures without the network.
"""

from __future__ import annotations

import socket
import statistics
import sys
import threading
import time

import httpx
import uvicorn

from devstack.server import create_console_server
from shared import bootstrap
from shared.bootstrap import Deps
from shared.settings import Settings

PAGES = ("/", "/docs", "/security", "/subprocessors", "/openapi.json", "/assets/console.css")
BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str]) -> int:
    requests = int(argv[0]) if argv else 200
    port = _free_port()
    with bootstrap.use(Deps(Settings({"LOG_LEVEL": "WARNING"}))):
        server = uvicorn.Server(
            uvicorn.Config(
                create_console_server(),
                host="127.0.0.1",
                port=port,
                log_level="warning",
                lifespan="off",
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        print(f"{'page':<22} {'bytes':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=BROWSER) as http:
                for path in PAGES:
                    for _ in range(5):
                        http.get(path).raise_for_status()
                    times = []
                    size = 0
                    for _ in range(requests):
                        started = time.perf_counter()
                        response = http.get(path)
                        times.append((time.perf_counter() - started) * 1000)
                        response.raise_for_status()
                        size = len(response.content)
                    p95 = statistics.quantiles(times, n=20)[-1]
                    print(
                        f"{path:<22} {size:>8} {statistics.median(times):>8.1f} "
                        f"{p95:>8.1f} {max(times):>8.1f}"
                    )
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
