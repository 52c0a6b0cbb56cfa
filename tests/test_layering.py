"""The architecture's rules, checked on the source: api -> functions -> shared, one package per
domain importing only the domains it may, no driver above shared/, no import cycle, nothing
loaded by name, no process-wide wiring outside the composition root, the same file roles in
every domain. The checker is tests/support/layering.py; its own tests below plant each kind of
violation in a temporary tree and see it reported, and a clean tree reported clean.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.support.layering import DOMAIN_IMPORTS, RULES, violations

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("rule", RULES)
def test_real_tree_obeys(rule: str) -> None:
    found = violations(ROOT, rule)
    assert not found, "\n".join(found)


# A small tree that keeps every rule: the planted violations below are added to it.
CLEAN = {
    "api/__init__.py": "",
    "api/costs.py": '"""Serves the cost routes."""\nfrom functions.costs.routes import app\n',
    "functions/__init__.py": "",
    "functions/costs/__init__.py": "",
    "functions/costs/routes.py": (
        "from functions.costs import service\nfrom shared.web import make_app\n\napp = make_app()\n"
    ),
    "functions/costs/service.py": "from shared.store import costs\n",
    "functions/jobs/__init__.py": "",
    "functions/jobs/service.py": "from shared.store import jobs\n",
    "functions/jobs/registry.py": "from functions.jobs import service\n",
    "functions/sync_costs/__init__.py": "",
    "functions/sync_costs/service.py": "from functions.jobs import service as jobs\n",
    "functions/accounts/__init__.py": "",
    "functions/accounts/service.py": "from functions.jobs import service\n",
    "functions/onboard/__init__.py": "",
    "functions/accounts/routes.py": "from ..onboard import service as onboarding\n",
    "functions/onboard/service.py": (
        "from functions.billing import plans\nfrom functions.jobs.service import enqueue\n"
    ),
    "shared/__init__.py": "",
    "shared/web.py": "def make_app():\n    return object()\n",
    "shared/db.py": "import psycopg\n\n\ndef connect():\n    return psycopg.connect()\n",
    "shared/bootstrap.py": (
        "_settings = None\n\n\ndef use_settings(value):\n    global _settings\n"
        "    _settings = value\n"
    ),
    "shared/store/__init__.py": "",
    "shared/store/costs.py": "from shared.db import connect\n",
    "shared/store/jobs.py": "from shared import db\n",
}


def plant(root: Path, files: dict[str, str] | None = None) -> Path:
    """Write the clean tree under `root`, with `files` (path -> source) added or replaced."""
    tree = {**CLEAN, **(files or {})}
    for rel, text in tree.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_clean_tree_has_no_violation(tmp_path: Path) -> None:
    assert violations(plant(tmp_path)) == []


def test_function_local_driver_import_is_reported(tmp_path: Path) -> None:
    root = plant(
        tmp_path,
        {
            "functions/costs/service.py": """\
            from shared.store import costs


            def total():
                import psycopg

                return psycopg
            """
        },
    )
    assert violations(root) == [
        "drivers: functions/costs/service.py:5: imports psycopg; api/ and functions/ never "
        "import psycopg, botocore or boto3 (shared/ wraps them)"
    ]


@pytest.mark.parametrize(
    "statement, target",
    [
        ("from psycopg.rows import dict_row", "psycopg.rows"),
        ("import psycopg_pool", "psycopg_pool"),
        ("import botocore.session", "botocore.session"),
        ("from boto3 import Session", "boto3"),
    ],
)
def test_every_driver_import_is_reported_even_type_only(
    tmp_path: Path, statement: str, target: str
) -> None:
    root = plant(
        tmp_path,
        {
            "functions/costs/service.py": f"from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
            f"    {statement}\n"
        },
    )
    assert violations(root) == [
        f"drivers: functions/costs/service.py:4: imports {target}; api/ and functions/ never "
        "import psycopg, botocore or boto3 (shared/ wraps them)"
    ]


def test_api_importing_a_driver_is_reported(tmp_path: Path) -> None:
    root = plant(
        tmp_path, {"api/costs.py": "import boto3\nfrom functions.costs.routes import app\n"}
    )
    assert violations(root) == [
        "drivers: api/costs.py:1: imports boto3; api/ and functions/ never import psycopg, "
        "botocore or boto3 (shared/ wraps them)"
    ]


def test_shared_importing_functions_is_reported(tmp_path: Path) -> None:
    root = plant(tmp_path, {"shared/extra.py": "from functions.jobs import service\n"})
    assert violations(root) == [
        "layers: shared/extra.py:1: imports functions.jobs.service; shared never imports "
        "api, devstack, functions, tests (api -> functions -> shared)"
    ]


def test_functions_importing_api_or_tests_is_reported(tmp_path: Path) -> None:
    root = plant(
        tmp_path,
        {
            "functions/costs/helpers.py": """\
            from shared.store import costs


            def helper():
                from tests.support import factories
                from api import costs as app
            """
        },
    )
    assert violations(root) == [
        "layers: functions/costs/helpers.py:5: imports tests.support; functions never "
        "imports api, devstack, tests (api -> functions -> shared)",
        "layers: functions/costs/helpers.py:6: imports api.costs; functions never imports api, "
        "devstack, tests (api -> functions -> shared)",
    ]


def test_api_file_of_thirty_lines_is_reported(tmp_path: Path) -> None:
    body = "".join(f"NAME_{n} = {n}\n" for n in range(28))
    root = plant(
        tmp_path,
        {"api/costs.py": f'"""Serves the cost routes."""\n\n# a comment\n{body}from x import y\n'},
    )
    assert violations(root) == [
        "layers: api/costs.py: 30 code lines; an api file only builds its app (at most 25)"
    ]


def test_domain_importing_a_domain_it_may_not_is_reported(tmp_path: Path) -> None:
    root = plant(
        tmp_path, {"functions/costs/service.py": "from functions.accounts import service\n"}
    )
    assert violations(root) == [
        "domains: functions/costs/service.py:1: costs imports functions.accounts.service; "
        "costs may import no other domain"
    ]


def test_relative_domain_import_is_resolved(tmp_path: Path) -> None:
    root = plant(tmp_path, {"functions/jobs/helpers.py": "from ..onboard import service\n"})
    assert violations(root) == [
        "domains: functions/jobs/helpers.py:1: jobs imports functions.onboard.service; "
        "jobs may import no other domain"
    ]


def test_unknown_domain_package_is_reported(tmp_path: Path) -> None:
    root = plant(
        tmp_path, {"functions/widgets/__init__.py": "", "functions/widgets/service.py": ""}
    )
    assert "widgets" not in DOMAIN_IMPORTS
    assert violations(root) == [
        "domains: functions/widgets/: domain 'widgets' is not in DOMAIN_IMPORTS (add it there "
        "with the domains it may import)"
    ]


def test_module_outside_any_domain_is_reported(tmp_path: Path) -> None:
    root = plant(tmp_path, {"functions/helpers.py": ""})
    assert violations(root) == [
        "domains: functions/helpers.py: a module of functions/ outside any domain package"
    ]


def test_registry_may_import_the_syncs_and_only_the_registry(tmp_path: Path) -> None:
    registry = "from functions.jobs import service\nfrom functions.sync_costs import service\n"
    assert violations(plant(tmp_path / "ok", {"functions/jobs/registry.py": registry})) == []
    root = plant(tmp_path / "bad", {"functions/jobs/dispatch.py": registry})
    assert violations(root) == [
        "domains: functions/jobs/dispatch.py:2: jobs imports functions.sync_costs.service; "
        "jobs may import no other domain"
    ]


def test_two_module_cycle_with_a_function_local_import_is_reported(tmp_path: Path) -> None:
    root = plant(
        tmp_path,
        {
            "functions/costs/a.py": "import functions.costs.b\n",
            "functions/costs/b.py": """\
            def later():
                from functions.costs import a
            """,
        },
    )
    assert violations(root) == [
        "cycles: import cycle among functions.costs.a, functions.costs.b: functions.costs.a "
        "(functions/costs/a.py:1) -> functions.costs.b (functions/costs/b.py:2) -> "
        "functions.costs.a"
    ]


def test_cycle_through_from_package_import_module_is_reported(tmp_path: Path) -> None:
    root = plant(
        tmp_path,
        {
            "functions/accounts/service.py": "from functions.accounts import views\n",
            "functions/accounts/views.py": "from functions.accounts import service\n",
        },
    )
    assert violations(root) == [
        "cycles: import cycle among functions.accounts.service, functions.accounts.views: "
        "functions.accounts.service (functions/accounts/service.py:1) -> "
        "functions.accounts.views (functions/accounts/views.py:1) -> functions.accounts.service"
    ]


def test_three_module_cycle_across_layers_names_every_module(tmp_path: Path) -> None:
    root = plant(
        tmp_path,
        {
            "shared/store/costs.py": "from shared.db import connect\nfrom shared import web\n",
            "shared/web.py": "from . import cache\n",
            "shared/cache.py": "from .store.costs import connect\n",
        },
    )
    assert violations(root) == [
        "cycles: import cycle among shared.cache, shared.store.costs, shared.web: shared.cache "
        "(shared/cache.py:1) -> shared.store.costs (shared/store/costs.py:2) -> shared.web "
        "(shared/web.py:1) -> shared.cache"
    ]


def test_type_checking_only_import_is_no_cycle(tmp_path: Path) -> None:
    root = plant(
        tmp_path,
        {
            "functions/costs/a.py": "from functions.costs import b\n",
            "functions/costs/b.py": """\
            from typing import TYPE_CHECKING

            if TYPE_CHECKING:
                from functions.costs.a import Thing
            else:
                import json
            """,
        },
    )
    assert violations(root) == []


@pytest.mark.parametrize("path", ["functions/costs/service.py", "functions/jobs/registry.py"])
def test_importlib_is_reported_even_in_the_registry(tmp_path: Path, path: str) -> None:
    loader = "import importlib\n\n\ndef load(name):\n    return importlib.import_module(name)\n"
    root = plant(tmp_path, {path: loader})
    assert violations(root) == [
        f"dynamic-imports: {path}:1: imports importlib; nothing loads "
        "modules by name (the job registry imports its handlers explicitly too)",
        f"dynamic-imports: {path}:5: calls import_module; nothing loads "
        "modules by name (the job registry imports its handlers explicitly too)",
    ]


@pytest.mark.parametrize(
    "source, line, what",
    [
        ("X = __import__('json')\n", 1, "calls __import__"),
        ("from importlib import import_module\n", 1, "imports from importlib"),
        ("import importlib.util\n", 1, "imports importlib"),
        ("import builtins\n\nX = builtins.__import__('json')\n", 3, "calls __import__"),
    ],
)
def test_every_load_by_name_is_reported(tmp_path: Path, source: str, line: int, what: str) -> None:
    root = plant(tmp_path, {"shared/loader.py": source})
    assert violations(root) == [
        f"dynamic-imports: shared/loader.py:{line}: {what}; nothing loads modules by name "
        "(the job registry imports its handlers explicitly too)"
    ]


def test_module_level_getattr_is_reported(tmp_path: Path) -> None:
    root = plant(
        tmp_path, {"functions/costs/__init__.py": "def __getattr__(name):\n    return name\n"}
    )
    assert violations(root) == [
        "dynamic-imports: functions/costs/__init__.py:1: module-level __getattr__; no lazy "
        "module loading, import explicitly"
    ]


def test_global_in_functions_is_reported(tmp_path: Path) -> None:
    root = plant(
        tmp_path,
        {
            "functions/sync_costs/pacing.py": """\
            _shared = None


            def shared_pacer():
                global _shared
                _shared = _shared or object()
                return _shared
            """
        },
    )
    assert violations(root) == [
        "wiring: functions/sync_costs/pacing.py:5: global _shared; process-wide wiring belongs "
        "in shared/bootstrap.py"
    ]


def test_global_is_allowed_only_in_the_root_and_the_process_singletons(tmp_path: Path) -> None:
    holder = "_current = None\n\n\ndef use(value):\n    global _current\n    _current = value\n"
    allowed = ["shared/bootstrap.py", "shared/logs.py", "shared/observability.py"]
    root = plant(tmp_path, {**{path: holder for path in allowed}, "shared/settings.py": holder})
    assert violations(root) == [
        "wiring: shared/settings.py:5: global _current; process-wide wiring belongs in "
        "shared/bootstrap.py"
    ]


def test_connecting_at_import_time_is_reported(tmp_path: Path) -> None:
    root = plant(
        tmp_path,
        {
            "shared/store/costs.py": """\
            from shared.db import connect, open_pool

            CONN = connect()
            POOL = open_pool(URL)


            class Store:
                client = boto3.client("s3")


            def later(conn=None):
                return connect()
            """,
            "shared/aws.py": """\
            import boto3


            @cache
            def factory(session=boto3.Session()):
                pass
            """,
        },
    )
    assert violations(root) == [
        "wiring: shared/aws.py:5: calls Session at import time",
        "wiring: shared/store/costs.py:3: calls connect at import time",
        "wiring: shared/store/costs.py:4: calls open_pool at import time",
        "wiring: shared/store/costs.py:8: calls client at import time",
    ]


def test_routes_sub_package_is_reported(tmp_path: Path) -> None:
    root = plant(
        tmp_path,
        {
            "functions/costs/routes/__init__.py": "from functions.costs.routes.csv import app\n",
            "functions/costs/routes/csv.py": "from functions.costs import service\n\napp = None\n",
        },
    )
    (root / "functions/costs/routes.py").unlink()  # the package replaces the clean tree's module
    assert violations(root) == [
        "file-roles: functions/costs/routes/: a routes/ sub-package; a domain's HTTP routes "
        "live in its one routes.py"
    ]


def test_models_package_common_module_and_second_routes_module_are_reported(
    tmp_path: Path,
) -> None:
    root = plant(
        tmp_path,
        {
            "functions/costs/models/__init__.py": "",
            "functions/costs/_common.py": "",
            "functions/costs/routes_admin.py": "",
        },
    )
    assert violations(root) == [
        "file-roles: functions/costs/_common.py: a _common.py; shared code of a domain goes to "
        "a module by role",
        "file-roles: functions/costs/models/: a models/ sub-package; a domain's request and "
        "response models live in its schemas.py",
        "file-roles: functions/costs/routes_admin.py: a routes module besides routes.py; a "
        "domain has one routes.py",
    ]


def test_violations_of_one_rule() -> None:
    with pytest.raises(ValueError, match="unknown rule"):
        violations(ROOT, "layering")
