"""Error reporting to Sentry: on when SENTRY_DSN is set, scrubbed, flushed per invocation.

What reaches Sentry is only what we hand it: default and auto-enabled integrations are off (no
request bodies, headers, cookies, query strings, local variables or log breadcrumbs are
collected), and every event still passes through a recursive key denylist and our value-pattern
scrubber (`shared.redaction`) before it leaves. Exceptions we report are our own or carry no
driver/AWS text (see shared.errors), and CloudTrail personal data never goes into messages, so
breadcrumbs are dropped entirely.

Serverless functions end with their invocation, so every captured event is flushed before it
ends; but `sentry_sdk.flush` blocks for up to FLUSH_TIMEOUT_S on the network, and one function
instance serves concurrent requests on one event loop (Fluid compute). So during a request
(`deferred_flush`, entered by the web layer for each one) a report only marks the flush as due,
and the web layer runs it after the response is sent, in a worker thread (`flush_deferred`):
the invocation lasts until the ASGI call returns (Vercel's Python runtime has no `wait_until`;
the end of that call is its equivalent), and the event loop serves other requests meanwhile.
Outside a request (a local worker thread, a script) the flush runs at once, or in a thread when
called on a running event loop.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, cast

import anyio.to_thread

from shared import bootstrap, redaction
from shared.settings import Settings

if TYPE_CHECKING:
    from sentry_sdk.types import Event, Hint

_lock = threading.Lock()
_started: bool = False

FLUSH_TIMEOUT_S = 2.0
# Set for the length of a request (`deferred_flush`): a mutable flag, so that reports made in
# the request's worker threads (which run in copies of its context) are seen by its end.
_flush_due: ContextVar[list[bool] | None] = ContextVar("cao_sentry_flush_due", default=None)

# Beyond Sentry's defaults: every name under which a credential of ours could travel.
EXTRA_DENYLIST = [
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "accesskeyid",
    "secretaccesskey",
    "sessiontoken",
    "credentials",
    "external_id",
    "externalid",
    "database_url",
    "database_owner_url",
    "cron_secret",
    "webhook_secret",
    "polar_webhook_secret",
    "polar_access_token",
    "webhook-signature",
    "webhook_signature",
    "signature",
    "api_key",
    "authorization",
    "bearer",
    "dsn",
]


def _before_send(event: Event, hint: Hint) -> Event | None:
    request: Any = event.get("request")
    if isinstance(request, dict):
        request.pop("query_string", None)
        request.pop("cookies", None)
        request.pop("data", None)
        if isinstance(request.get("url"), str):
            request["url"] = request["url"].split("?", 1)[0]
    event.pop("breadcrumbs", None)
    return cast("Event", redaction.scrub(event))


def _drop_breadcrumb(crumb: Any, hint: Hint) -> None:
    return None


def start(settings: Settings | None = None, *, transport: Any = None) -> bool:
    """Initialise Sentry once per process when a DSN is configured; True when reporting."""
    global _started  # noqa: PLW0603 - one Sentry client per process
    with _lock:
        if _started:
            return True
        settings = settings or bootstrap.current().settings
        dsn = settings.sentry_dsn
        if not dsn and transport is None:
            return False
        import sentry_sdk  # noqa: PLC0415 - loaded only when reporting is on (cold start)
        from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber  # noqa: PLC0415

        with warnings.catch_warnings():
            # sentry-sdk 2.7x deprecates send_default_pii in favour of `data_collection`, but
            # with `data_collection` set it ignores event_scrubber, which we want (recursive).
            warnings.filterwarnings("ignore", ".*send_default_pii.*", DeprecationWarning)
            sentry_sdk.init(
                dsn=dsn or "https://public@sentry.invalid/1",
                transport=transport,
                release=settings.get("VERCEL_GIT_COMMIT_SHA") or None,
                environment=settings.get("VERCEL_ENV"),
                send_default_pii=False,
                include_local_variables=False,
                include_source_context=False,
                default_integrations=False,
                auto_enabling_integrations=False,
                integrations=[],
                max_breadcrumbs=0,
                before_send=_before_send,
                before_breadcrumb=_drop_breadcrumb,
                event_scrubber=EventScrubber(
                    denylist=DEFAULT_DENYLIST + EXTRA_DENYLIST, recursive=True
                ),
            )
        _started = True
        return True


def stop() -> None:
    """Forget the client (tests)."""
    global _started  # noqa: PLW0603
    with _lock:
        if _started:
            import sentry_sdk  # noqa: PLC0415

            sentry_sdk.get_client().close(timeout=1)
            sentry_sdk.init(dsn=None)
        _started = False


class DatabaseDriverError(Exception):
    """Stands in for a database driver error in reports: class names and SQLSTATE, no text."""


def _is_driver_error(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] == "psycopg"


def reportable(exc: BaseException) -> BaseException:
    """`exc`, or a stand-in when it or its chain holds a database driver error.

    Driver messages echo the values of the rows involved ("Key (value)=(...)") and the
    host; Sentry would send every exception of the chain with its message.
    """
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    if not any(_is_driver_error(e) for e in chain):
        return exc
    names = " <- ".join(
        type(e).__name__
        + (f" (SQLSTATE {state})" if (state := getattr(e, "sqlstate", None)) else "")
        for e in chain
    )
    return DatabaseDriverError(names).with_traceback(exc.__traceback__)


def report(exc: BaseException, **tags: str) -> None:
    """Send one exception (with tags such as request_id, job kind) and flush it now."""
    if not start():
        return
    import sentry_sdk  # noqa: PLC0415

    with sentry_sdk.new_scope() as scope:
        for key, value in tags.items():
            scope.set_tag(key, redaction.scrub_text(str(value)))
        sentry_sdk.capture_exception(reportable(exc))
    _flush()


def report_message(message: str, **tags: str) -> None:
    """Send a message we wrote (never one carrying AWS or database text)."""
    if not start():
        return
    import sentry_sdk  # noqa: PLC0415

    with sentry_sdk.new_scope() as scope:
        for key, value in tags.items():
            scope.set_tag(key, redaction.scrub_text(str(value)))
        sentry_sdk.capture_message(redaction.scrub_text(message), level="warning")
    _flush()


def _flush_now() -> None:
    import sentry_sdk  # noqa: PLC0415

    sentry_sdk.flush(timeout=FLUSH_TIMEOUT_S)


def _flush() -> None:
    """Send what was captured before the invocation ends, never blocking an event loop."""
    due = _flush_due.get()
    if due is not None:
        due.append(True)  # the request's end flushes it (flush_deferred)
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _flush_now()  # no event loop in this thread: block this thread only
    else:
        loop.run_in_executor(None, _flush_now)


@contextmanager
def deferred_flush() -> Iterator[list[bool]]:
    """For the block (one request), reports only mark the flush as due; afterwards pass the
    yielded marks to `flush_deferred`."""
    due: list[bool] = []
    token = _flush_due.set(due)
    try:
        yield due
    finally:
        _flush_due.reset(token)


async def flush_deferred(due: list[bool]) -> None:
    """Flush what the request reported, in a worker thread (the event loop stays free)."""
    if due:
        due.clear()
        await anyio.to_thread.run_sync(_flush_now)
