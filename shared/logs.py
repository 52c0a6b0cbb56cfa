"""Structured JSON logs on stdout, with every record scrubbed of secrets.

`get_logger()` returns the one process-wide logger; context goes in keys (`extra=`), never
formatted into the message. The formatter runs `redaction.scrub` over the whole record just
before it is serialised, so a secret that a bug passes in anywhere is masked before it is
written.

Why not Powertools Logger (the design's first choice): importing any part of
aws-lambda-powertools imports botocore (its package __init__ registers a user-agent hook), and
the read functions' cold-start budget forbids loading botocore. python-json-logger gives the
same record shape (timestamp, level, service, message, extra keys) on the standard library.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from shared import redaction

SERVICE = "cloudagencyops"


class ScrubbingFormatter(JsonFormatter):
    """JSON records with the service name, scrubbed just before serialisation."""

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        log_data["service"] = SERVICE
        scrubbed: dict[str, Any] = redaction.scrub(log_data)
        return scrubbed


_lock = threading.Lock()
_logger: logging.Logger | None = None


def get_logger() -> logging.Logger:
    """The process-wide structured logger (configured on first use, not at import)."""
    global _logger  # noqa: PLW0603 - one logger per process
    with _lock:
        if _logger is None:
            logger = logging.getLogger(SERVICE)
            logger.setLevel(os.environ.get("LOG_LEVEL", "INFO").upper())
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(
                ScrubbingFormatter(
                    "{asctime}{levelname}{message}",
                    style="{",
                    rename_fields={"asctime": "timestamp", "levelname": "level"},
                    json_default=str,
                )
            )
            logger.addHandler(handler)
            logger.propagate = True  # so test capture (caplog) sees records too
            _logger = logger
        return _logger
