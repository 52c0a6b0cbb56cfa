"""Structured JSON logs (Powertools Logger), with every record scrubbed of secrets.

`get_logger()` returns the one process-wide logger; context goes in keys (`append_keys`,
`extra=`), never formatted into the message. The formatter runs `redaction.scrub` over the whole
record, so a secret that a bug passes in anywhere is masked before it is written.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.logging.types import PowertoolsLogRecord

from shared import redaction

SERVICE = "cloudagencyops"


class ScrubbingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, with the record scrubbed just before serialisation."""

    def serialize(self, log: dict[str, Any] | PowertoolsLogRecord) -> str:
        return json.dumps(redaction.scrub(dict(log)), default=str, separators=(",", ":"))


_lock = threading.Lock()
_logger: Logger | None = None


def get_logger() -> Logger:
    """The process-wide structured logger (created on first use, not at import)."""
    global _logger  # noqa: PLW0603 - one logger per process
    with _lock:
        if _logger is None:
            _logger = Logger(
                service=SERVICE,
                level=os.environ.get("LOG_LEVEL", "INFO"),
                logger_formatter=ScrubbingFormatter(),
            )
        return _logger


def scrubbed_handlers() -> list[logging.Handler]:
    """The handlers our logger writes through (tests attach capture handlers beside them)."""
    return list(get_logger().handlers)
