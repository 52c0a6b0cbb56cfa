"""Generate functions/alerts/operations.json from botocore's service models (development only).

    python -m devstack.gen_operations          # rewrite the file
    python -m devstack.gen_operations --check  # exit 1 when it differs (tests run `generate`)

For every botocore service named in `functions.alerts.services.CE_SERVICES`: its operation
names. For every one of those names: how many of botocore's services (all of them, not only the
mapped ones) define an operation of that name, so "what changed" ranks a name several services
share (TagResource, CreateTags) below one only the anomaly's service has (RunInstances).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import botocore
import botocore.session

from functions.alerts.services import botocore_services

TARGET = Path(__file__).resolve().parent.parent / "functions" / "alerts" / "operations.json"


def generate() -> str:
    """The file's text, from the installed botocore."""
    loader = botocore.session.get_session().get_component("data_loader")
    shared: Counter[str] = Counter()
    operations: dict[str, list[str]] = {}
    wanted = set(botocore_services())
    for name in loader.list_available_services("service-2"):
        ops = sorted(loader.load_service_model(name, "service-2")["operations"])
        shared.update(ops)
        if name in wanted:
            operations[name] = ops
    missing = wanted - set(operations)
    if missing:
        raise SystemExit(f"botocore has no service model for: {', '.join(sorted(missing))}")
    names = sorted({op for ops in operations.values() for op in ops})
    document = {
        "botocore": botocore.__version__,
        "services": operations,
        "services_defining": {op: shared[op] for op in names},
    }
    return json.dumps(document, indent=0, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = generate()
    if argv == ["--check"]:
        return 0 if TARGET.read_text() == text else 1
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
