"""Structured JSON logs on stdout, with every record scrubbed of secrets.

`get_logger()` returns the one process-wide logger: a Powertools for AWS Lambda `Logger`
(structured JSON to stdout, the design's choice), configured on first use. Context goes in keys
(`extra=`), never formatted into the message. Its formatter is ours: it keeps the record shape
the product has always written (`timestamp`, `level`, `message`, `service`, then the extra keys,
and `exc_info` with the traceback) and runs `redaction.scrub` over the whole record just before
it is serialised, so a secret that a bug passes in anywhere is masked before it is written.

Cold start: importing Powertools' logging adds ~12 ms to a function's import (measured in the
README's benchmarks). It loads the top-level `botocore` package (Powertools' __init__ registers
a user-agent hook on it: about a millisecond) but neither boto3 nor `botocore.session`, which is
what the read functions' budget rules out (tests/api/test_cold_start.py). No other Powertools
utility is used: the tracer, metrics, idempotency and batch utilities are bound to AWS services
that Vercel does not give us.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from aws_lambda_powertools.logging import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from shared import redaction

SERVICE = "cloudagencyops"


class ScrubbingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter with our record shape, scrubbed just before serialisation."""

    def __init__(self, **options: Any) -> None:
        super().__init__(
            log_record_order=["timestamp", "level", "message"],
            datefmt="%Y-%m-%d %H:%M:%S,%F",  # as before: 2026-11-29 10:05:51,232 (UTC)
            utc=True,
            serialize_stacktrace=False,  # the traceback text is in exc_info
            location=None,  # a None key is left out of the record
            **options,
        )

    def _extract_log_message(self, log_record: logging.LogRecord) -> Any:
        # The message is the text we wrote (Powertools would decode a JSON-looking one).
        return log_record.getMessage()

    def serialize(self, log: Any) -> str:
        record: dict[str, Any] = dict(log)
        record["service"] = SERVICE
        if "exception" in record:
            record["exc_info"] = record.pop("exception")
        for key in ("exception_name", "exception_notes"):
            record.pop(key, None)
        scrubbed: dict[str, Any] = redaction.scrub(record)
        return super().serialize(scrubbed)


_lock = threading.Lock()
_logger: Logger | None = None


def get_logger() -> Logger:
    """The process-wide structured logger (configured on first use, not at import)."""
    global _logger  # noqa: PLW0603 - one logger per process
    with _lock:
        if _logger is None:
            _logger = Logger(
                service=SERVICE,
                level=os.environ.get("LOG_LEVEL", "INFO").upper(),
                logger_formatter=ScrubbingFormatter(),
            )
            # Records still propagate to the root logger (test capture, caplog, sees them);
            # Powertools filters them out of the root handlers present when it is set up, so a
            # platform's own root handler does not write each line twice.
        return _logger
