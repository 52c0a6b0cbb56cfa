"""The heartbeat of a running job: its lease is renewed while the worker lives.

A job's lease is short (functions/jobs/worker.py: LEASE_SECONDS), so that when a worker dies
(killed at its time limit, out of memory, its instance gone) another delivery takes the job over
within about a minute. A live worker keeps it by renewing the lease every HEARTBEAT_S from a
daemon thread, on a connection borrowed from the pool for that one statement, whatever the job's
own thread is doing (a long AWS call, a transaction, a pacer wait). No sync loop has to remember
to call anything; the thread stops when the job ends, or as soon as a renewal finds the lease
taken over (the job's next fenced write then raises LeaseLostError and writes nothing).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

from shared.logs import get_logger


class Heartbeat:
    """Calls `renew` every `interval` seconds until the block ends or `renew` returns False."""

    def __init__(self, renew: Callable[[], bool], interval: float) -> None:
        self._renew = renew
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)
        self.lost = False

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if not self._renew():
                    self.lost = True
                    return
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried at the next one
                get_logger().warning(
                    "could not renew a job's lease", extra={"error_class": type(exc).__name__}
                )
