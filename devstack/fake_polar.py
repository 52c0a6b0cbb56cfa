"""A fake of the two Polar API endpoints we call, on loopback, recording every request.

    with FakePolar(token="polar_oat_...") as polar:      # tests
        settings POLAR_API_URL = polar.url
        ... polar.requests[-1].json["external_customer_id"] ...

    python -m devstack.fake_polar --port 8025           # the demo

- POST /v1/checkouts/ -> 201 {id, url, status, expires_at, ...}; the customer (by
  `external_customer_id`) becomes known, as if the checkout had been paid.
- POST /v1/customer-sessions/ -> 201 {customer_portal_url, token, expires_at, ...} for a known
  customer, 404 for one that never checked out (what Polar answers).
- A wrong bearer token -> 401; `fail_next(status)` makes the next answers fail with `status`;
  `delay` slows every answer (timeouts).
"""

from __future__ import annotations

import argparse
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any


@dataclass
class _State:
    token: str | None
    requests: list[RecordedRequest] = field(default_factory=list)
    customers: dict[str, str] = field(default_factory=dict)  # external id -> customer id
    failures: list[int] = field(default_factory=list)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakePolar:
    """The fake Polar API server; a context manager that serves on 127.0.0.1."""

    def __init__(self, token: str | None = None, *, port: int = 0) -> None:
        self._state = _State(token=token)
        state = self._state
        server_ref: dict[str, str] = {}

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: tests and the demo log what matters themselves

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(min(length, MAX_BODY))
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    body = None
                with state.lock:
                    state.requests.append(
                        RecordedRequest(
                            "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body
                        )
                    )
                    failure = state.failures.pop(0) if state.failures else None
                if state.delay:
                    time.sleep(state.delay)
                if failure is not None:
                    self._answer(failure, {"error": "Injected", "detail": "fake failure"})
                    return
                if state.token is not None and (
                    self.headers.get("authorization") != f"Bearer {state.token}"
                ):
                    self._answer(401, {"error": "Unauthorized", "detail": "invalid token"})
                    return
                if not isinstance(body, dict):
                    self._answer(422, {"error": "RequestValidationError", "detail": "body"})
                    return
                base = server_ref["url"]
                expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
                if self.path == "/v1/checkouts/":
                    products = body.get("products")
                    if not (isinstance(products, list) and products):
                        self._answer(422, {"error": "RequestValidationError", "detail": "products"})
                        return
                    checkout_id = "chk_" + secrets.token_hex(8)
                    external = body.get("external_customer_id")
                    if isinstance(external, str):
                        with state.lock:
                            state.customers.setdefault(external, "cus_" + secrets.token_hex(8))
                    self._answer(
                        201,
                        {
                            "id": checkout_id,
                            "url": f"{base}/checkout/{checkout_id}",
                            "status": "open",
                            "client_secret": "polar_c_" + secrets.token_hex(8),
                            "products": products,
                            "external_customer_id": external,
                            "success_url": body.get("success_url"),
                            "expires_at": expires,
                        },
                    )
                elif self.path == "/v1/customer-sessions/":
                    external = body.get("external_customer_id")
                    with state.lock:
                        customer = state.customers.get(external) if external else None
                    if customer is None:
                        self._answer(404, {"error": "ResourceNotFound", "detail": "Not found"})
                        return
                    token = "polar_cst_" + secrets.token_hex(8)
                    self._answer(
                        201,
                        {
                            "id": "cs_" + secrets.token_hex(8),
                            "token": token,
                            "customer_id": customer,
                            "customer_portal_url": f"{base}/portal?customer_session_token={token}",
                            "return_url": body.get("return_url"),
                            "expires_at": expires,
                        },
                    )
                else:
                    self._answer(404, {"error": "ResourceNotFound", "detail": "Not found"})

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        host, bound = self._server.server_address[:2]
        server_ref["url"] = f"http://{host!s}:{bound}"
        self.url = server_ref["url"]
        self._thread: threading.Thread | None = None

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    def add_customer(self, external_id: str) -> None:
        with self._state.lock:
            self._state.customers.setdefault(external_id, "cus_" + secrets.token_hex(8))

    def fail_next(self, status: int, times: int = 1) -> None:
        with self._state.lock:
            self._state.failures.extend([status] * times)

    def set_delay(self, seconds: float) -> None:
        self._state.delay = seconds

    def start(self) -> FakePolar:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-polar", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakePolar:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a fake Polar API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--token", default=None, help="bearer token to require (default: any)")
    args = parser.parse_args(argv)
    with FakePolar(args.token, port=args.port) as polar:
        print(f"fake Polar API on {polar.url} (set POLAR_API_URL={polar.url}); Ctrl-C stops it")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
