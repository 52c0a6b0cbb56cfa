"""The registry of job handlers: one handler per job kind, imported explicitly; and the
dispatcher's side (service, routes) loads neither the registry nor botocore.session."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from functions.jobs import registry
from functions.sync_cloudtrail import service as cloudtrail
from shared.store import jobs

ROOT = Path(__file__).resolve().parents[2]


def test_every_job_kind_has_a_handler_and_nothing_else_does() -> None:
    assert set(registry.HANDLERS) == set(jobs.JOB_KINDS)
    assert all(registry.handler_for(kind) is not None for kind in jobs.JOB_KINDS)


def test_the_kinds_are_run_by_their_domains_handlers() -> None:
    assert registry.handler_for("costs") is registry.costs_then_alerts
    assert registry.handler_for("cloudtrail") is cloudtrail.run
    assert registry.handler_for("verify") is None  # run by whoever runs it, not by the worker


def test_the_dispatcher_and_sync_now_load_neither_the_registry_nor_botocore_session() -> None:
    # Nor the queue SDK (vercel.queue): it is loaded when something is published. The bare
    # botocore package is Powertools' Logger's (shared/logs.py), as in every function.
    probe = (
        "import importlib, json, sys\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        "tops = {'boto3', 'botocore', 'vercel', 'functions'}\n"
        "print(json.dumps(sorted(m for m in sys.modules\n"
        "                        if m.split('.')[0] in tops and m != 'botocore')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, "api.cron", "functions.jobs.service"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [
        "functions",
        "functions.jobs",
        "functions.jobs.routes",
        "functions.jobs.schemas",
        "functions.jobs.service",
    ]
