"""The product's logs: Powertools Logger, one JSON line per record on stdout, in the shape the
product has always written, scrubbed; and not written a second time, raw, by a root handler that
the platform installed (Vercel's runtime installs one before it imports the function)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from aws_lambda_powertools import Logger

from shared import logs

ROOT = Path(__file__).resolve().parents[2]
SECRET_URL = "postgresql://cao_app:hunter2-canary@db.internal/neondb"

SCRIPT = f"""
import io, logging, sys
platform = io.StringIO()
logging.basicConfig(stream=platform, level=logging.INFO, format="%(message)s")
from shared.logs import get_logger
log = get_logger()
log.info("request", extra={{"request_id": "r1", "agency_id": "a1", "status": 200,
                            "database_url": "{SECRET_URL}"}})
try:
    raise RuntimeError("could not connect to {SECRET_URL}")
except RuntimeError:
    log.exception("unhandled error", extra={{"error_class": "RuntimeError"}})
log.info("42")
log.debug("not at INFO")
sys.stderr.write(platform.getvalue())
"""


def run_script() -> tuple[list[dict[str, object]], str, str]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines()], out.stdout, out.stderr


def test_the_product_logs_through_powertools_logger() -> None:
    assert isinstance(logs.get_logger(), Logger)
    assert logs.get_logger().service == logs.SERVICE


def test_each_record_is_one_scrubbed_json_line_in_the_products_shape() -> None:
    records, stdout, _ = run_script()

    assert [r["message"] for r in records] == ["request", "unhandled error", "42"]
    request, error, number = records
    assert list(request)[:3] == ["timestamp", "level", "message"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}", str(request["timestamp"]))
    assert request["level"] == "INFO" and request["service"] == "cloudagencyops"
    assert (request["request_id"], request["agency_id"], request["status"]) == ("r1", "a1", 200)
    assert request["database_url"] == "[redacted]"
    assert error["level"] == "ERROR" and error["error_class"] == "RuntimeError"
    assert "RuntimeError: could not connect to" in str(error["exc_info"])
    assert number["message"] == "42"  # the text written, never decoded as JSON
    assert "hunter2" not in stdout
    assert {key for r in records for key in r} == {
        "timestamp",
        "level",
        "message",
        "service",
        "request_id",
        "agency_id",
        "status",
        "database_url",
        "error_class",
        "exc_info",
    }


def test_a_root_handler_installed_before_does_not_write_the_records_again_raw() -> None:
    records, _, platform = run_script()

    assert records
    assert platform == ""
