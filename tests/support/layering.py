"""The architecture's rules, checked on the source text (ast), never by importing it.

`violations(root)` reads the modules under `root`'s api/, functions/ and shared/ and returns one
human-readable line per broken rule, each starting with the rule's name (one of RULES):

- layers: api -> functions -> shared, nothing runs back up; shared imports none of functions,
  api, devstack, tests; functions none of api, devstack, tests; api none of devstack, tests; an
  api file only builds its app (at most API_MAX_CODE_LINES code lines).
- drivers: no module in api/ or functions/ imports psycopg (any psycopg*), botocore or boto3,
  wherever the import stands (function-local and type-only imports too): they go through shared/.
- domains: a module of functions/<domain>/ imports only the domains DOMAIN_IMPORTS lets it
  (the job registry alone may import the syncs, MODULE_IMPORTS); a package under functions/ that
  is not in DOMAIN_IMPORTS is itself a violation, so a new domain is added deliberately.
- cycles: no import cycle between modules. The graph has absolute and relative imports,
  `from pkg import name` as an edge to the module `pkg.name` when that is a module file, and
  function-local imports (they run, later); imports under `if TYPE_CHECKING:` never run and do
  not count. An edge goes to the module imported, not to its parent packages (Python has
  initialised those first, so a package's __init__ importing its own modules is no cycle).
- dynamic-imports: nothing loads modules by name: no importlib, `import_module`, `__import__`
  and no module-level `__getattr__` (lazy loading), anywhere: the job registry imports its
  handlers explicitly too.
- wiring: no module-level mutable wiring outside the composition root (COMPOSITION_ROOT): no
  `global` statement (but in PROCESS_SINGLETONS, which configure a process-wide library once);
  and nothing connects at import time (no module-level call named in
  CONNECTING_CALLS).
- file-roles: in a domain, no routes/ or models/ sub-package, no _common.py, and one routes.py
  (no routes_*.py).
"""

from __future__ import annotations

import ast
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

PACKAGES = ("api", "functions", "shared")

RULES = ("layers", "drivers", "domains", "cycles", "dynamic-imports", "wiring", "file-roles")

# domain -> the other domains it may import (besides shared). A DAG; the README's table.
DOMAIN_IMPORTS: dict[str, frozenset[str]] = {
    "jobs": frozenset(),
    "sync_costs": frozenset({"jobs"}),
    "sync_cloudtrail": frozenset({"jobs"}),
    "accounts": frozenset({"onboard", "jobs"}),
    "onboard": frozenset({"jobs", "billing", "people"}),
    "people": frozenset(),
    "agency": frozenset({"accounts", "onboard"}),
    "costs": frozenset(),
    "access": frozenset(),
    "audit": frozenset(),
    "runbooks": frozenset(),
    "billing": frozenset(),
    "trust": frozenset(),
    "notices": frozenset(),
    "clients": frozenset(),
    "alerts": frozenset(),
}

# module -> further domains that one module may import: the registry imports the job handlers.
MODULE_IMPORTS: dict[str, frozenset[str]] = {
    "functions.jobs.registry": frozenset({"sync_costs", "sync_cloudtrail", "alerts"}),
}

# layer -> top-level packages it must never import.
FORBIDDEN_BY_LAYER: dict[str, frozenset[str]] = {
    "shared": frozenset({"functions", "api", "devstack", "tests"}),
    "functions": frozenset({"api", "devstack", "tests"}),
    "api": frozenset({"devstack", "tests"}),
}
DRIVER_LAYERS = frozenset({"api", "functions"})
API_MAX_CODE_LINES = 25

COMPOSITION_ROOT = "shared/bootstrap.py"
# Process-wide by nature, not dependency wiring: the logging module and the Sentry SDK are
# global themselves, and these modules configure each once per process.
PROCESS_SINGLETONS = {
    "shared/logs.py": "the stdlib logging module is process-wide",
    "shared/observability.py": "the Sentry SDK holds one client per process",
}
CONNECTING_CALLS = frozenset(
    {"connect", "create_client", "client", "Session", "get_session", "open_pool", "ConnectionPool"}
)
# forbidden sub-package of a domain -> where its code goes instead
SUB_PACKAGE_HOME = {
    "routes": "a domain's HTTP routes live in its one routes.py",
    "models": "a domain's request and response models live in its schemas.py",
}


@dataclass(frozen=True)
class Module:
    name: str  # dotted: functions.costs.service; a package is named by its __init__.py
    path: str  # posix, relative to the root: functions/costs/service.py
    tree: ast.Module
    text: str

    @property
    def is_package(self) -> bool:
        return self.path.endswith("/__init__.py")

    @property
    def layer(self) -> str:
        return self.path.split("/", 1)[0]


@dataclass(frozen=True)
class Import:
    line: int
    target: str  # absolute dotted name, resolved to the deepest module of the tree it names
    type_only: bool  # under `if TYPE_CHECKING:`: never runs


def violations(root: Path, rule: str | None = None) -> list[str]:
    """Every violation under `root` (or of one rule), one line each, "rule: where: what"."""
    if rule is not None and rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; rules: {', '.join(RULES)}")
    modules = load(root)
    names = {m.name: m for m in modules}
    imports = {m.name: list(imports_of(m, names)) for m in modules}
    checks = {
        "layers": _layers,
        "drivers": _drivers,
        "domains": _domains,
        "cycles": _cycles,
        "dynamic-imports": _dynamic_imports,
        "wiring": _wiring,
        "file-roles": _file_roles,
    }
    found: list[str] = []
    for name in RULES if rule is None else (rule,):
        lines = sorted(set(checks[name](modules, imports)), key=_natural)
        found.extend(f"{name}: {line}" for line in lines)
    return found


def _natural(text: str) -> list[tuple[int, str]]:
    """Sort key that orders file:9 before file:10."""
    return [(int(part), "") if part.isdigit() else (0, part) for part in re.split(r"(\d+)", text)]


def load(root: Path) -> list[Module]:
    """The modules of api/, functions/ and shared/ under `root`, parsed (never imported)."""
    modules: list[Module] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root)
            if any(part == "__pycache__" or part.startswith(".") for part in rel.parts):
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            text = path.read_text()
            tree = ast.parse(text, filename=str(rel))
            modules.append(Module(".".join(parts), rel.as_posix(), tree, text))
    return modules


def imports_of(module: Module, names: dict[str, Module]) -> Iterator[Import]:
    """Every import statement of `module`, wherever it stands, each name resolved."""
    for node, type_only in _nodes(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(node.lineno, _deepest(alias.name, names), type_only)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, node)
            if base is None:
                continue
            targets: set[str] = set()
            for alias in node.names:
                submodule = f"{base}.{alias.name}" if base else alias.name
                targets.add(submodule if submodule in names else _deepest(base, names))
            for target in sorted(targets):
                yield Import(node.lineno, target, type_only)


def _nodes(node: ast.AST, type_only: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node under `node`, and whether it stands in an `if TYPE_CHECKING:` body."""
    yield node, type_only
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        yield from _nodes(node.test, type_only)
        for stmt in node.body:
            yield from _nodes(stmt, True)
        for stmt in node.orelse:
            yield from _nodes(stmt, type_only)
        return
    for child in ast.iter_child_nodes(node):
        yield from _nodes(child, type_only)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(module: Module, node: ast.ImportFrom) -> str | None:
    """The absolute module a `from ... import` names; None when it climbs above the root."""
    if node.level == 0:
        return node.module or ""
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    parts = package.split(".") if package else []
    up = node.level - 1
    if up >= len(parts):
        return None
    base = parts[: len(parts) - up]
    if node.module:
        base.append(node.module)
    return ".".join(base)


def _deepest(name: str, names: dict[str, Module]) -> str:
    """The longest prefix of `name` that is a module of the tree (`name` itself if none is)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in names:
            return prefix
    return name


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def _domain(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "functions" else None


def _is_driver(name: str) -> bool:
    top = _top(name)
    return top in {"boto3", "botocore"} or top.startswith("psycopg")


Imports = dict[str, list[Import]]


def _layers(modules: list[Module], imports: Imports) -> Iterator[str]:
    for module in modules:
        forbidden = FORBIDDEN_BY_LAYER[module.layer]
        for imp in imports[module.name]:
            if _top(imp.target) in forbidden:
                yield (
                    f"{module.path}:{imp.line}: imports {imp.target}; {module.layer} never imports "
                    f"{', '.join(sorted(forbidden))} (api -> functions -> shared)"
                )
        if module.layer == "api":
            code = [
                line
                for line in module.text.splitlines()
                if line.strip() and not line.startswith("#")
            ]
            if len(code) > API_MAX_CODE_LINES:
                yield (
                    f"{module.path}: {len(code)} code lines; an api file only builds its app "
                    f"(at most {API_MAX_CODE_LINES})"
                )


def _drivers(modules: list[Module], imports: Imports) -> Iterator[str]:
    for module in modules:
        if module.layer not in DRIVER_LAYERS:
            continue
        for imp in imports[module.name]:
            if _is_driver(imp.target):
                yield (
                    f"{module.path}:{imp.line}: imports {imp.target}; api/ and functions/ never "
                    "import psycopg, botocore or boto3 (shared/ wraps them)"
                )


def _domains(modules: list[Module], imports: Imports) -> Iterator[str]:
    packages: set[str] = set()
    for module in modules:
        parts = module.path.split("/")
        if parts[0] != "functions" or len(parts) < 2:
            continue
        if len(parts) == 2:
            if module.path != "functions/__init__.py":
                yield f"{module.path}: a module of functions/ outside any domain package"
            continue
        domain = parts[1]
        packages.add(domain)
        if domain not in DOMAIN_IMPORTS:
            continue
        allowed = DOMAIN_IMPORTS[domain] | MODULE_IMPORTS.get(module.name, frozenset())
        for imp in imports[module.name]:
            other = _domain(imp.target)
            if other is None or other == domain or other in allowed:
                continue
            may = ", ".join(sorted(allowed)) if allowed else "no other domain"
            yield (
                f"{module.path}:{imp.line}: {domain} imports {imp.target}; "
                f"{domain} may import {may}"
            )
    for domain in sorted(packages - DOMAIN_IMPORTS.keys()):
        yield (
            f"functions/{domain}/: domain {domain!r} is not in DOMAIN_IMPORTS "
            "(add it there with the domains it may import)"
        )


def _cycles(modules: list[Module], imports: Imports) -> Iterator[str]:
    paths = {m.name: m.path for m in modules}
    # module -> imported module -> line of the first import that runs
    graph: dict[str, dict[str, int]] = {m.name: {} for m in modules}
    for module in modules:
        for imp in imports[module.name]:
            if imp.type_only or imp.target == module.name or imp.target not in graph:
                continue
            graph[module.name].setdefault(imp.target, imp.line)
    for component in strongly_connected(graph):
        if len(component) < 2:
            continue
        members = set(component)
        cycle = _shortest_cycle(graph, min(members), members)
        steps = " -> ".join(
            f"{name} ({paths[name]}:{graph[name][after]})" for name, after in pairwise(cycle)
        )
        yield f"import cycle among {', '.join(sorted(members))}: {steps} -> {cycle[-1]}"


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def _shortest_cycle(graph: dict[str, dict[str, int]], start: str, members: set[str]) -> list[str]:
    """A shortest path start -> ... -> start inside one strongly connected component."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for succ in sorted(graph[node]):
            if succ not in members:
                continue
            if succ == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if succ not in previous:
                previous[succ] = node
                queue.append(succ)
    raise AssertionError(f"{start} is in a component but on no cycle")  # pragma: no cover


def _dynamic_imports(modules: list[Module], imports: Imports) -> Iterator[str]:
    del imports  # the statements are read directly: `import importlib.util` names importlib
    for module in modules:
        for node in ast.walk(module.tree):
            what = None
            if isinstance(node, ast.Import):
                if any(_top(alias.name) == "importlib" for alias in node.names):
                    what = "imports importlib"
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0 and _top(node.module or "") == "importlib":
                    what = "imports from importlib"
            elif isinstance(node, ast.Call):
                fn = node.func
                name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                if name in {"__import__", "import_module"}:
                    what = f"calls {name}"
            if what:
                yield (
                    f"{module.path}:{getattr(node, 'lineno', 0)}: {what}; nothing loads modules "
                    "by name (the job registry imports its handlers explicitly too)"
                )
        for stmt in module.tree.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and (
                stmt.name == "__getattr__"
            ):
                yield (
                    f"{module.path}:{stmt.lineno}: module-level __getattr__; no lazy module "
                    "loading, import explicitly"
                )


def _wiring(modules: list[Module], imports: Imports) -> Iterator[str]:
    del imports
    for module in modules:
        if module.path != COMPOSITION_ROOT and module.path not in PROCESS_SINGLETONS:
            for node in ast.walk(module.tree):
                if isinstance(node, ast.Global):
                    yield (
                        f"{module.path}:{node.lineno}: global {', '.join(node.names)}; "
                        f"process-wide wiring belongs in {COMPOSITION_ROOT}"
                    )
        for call in _import_time_calls(module.tree):
            fn = call.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if name in CONNECTING_CALLS:
                yield f"{module.path}:{call.lineno}: calls {name} at import time"


def _import_time_calls(node: ast.AST) -> Iterator[ast.Call]:
    """The calls that run when the module is imported: not inside a def's or lambda's body."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            # Decorators and default values run at definition time; the body does not.
            evaluated: list[ast.expr] = [*child.args.defaults]
            evaluated += [d for d in child.args.kw_defaults if d is not None]
            if not isinstance(child, ast.Lambda):
                evaluated += child.decorator_list
            for expr in evaluated:
                if isinstance(expr, ast.Call):
                    yield expr
                yield from _import_time_calls(expr)
            continue
        if isinstance(child, ast.Call):
            yield child
        yield from _import_time_calls(child)


def _file_roles(modules: list[Module], imports: Imports) -> Iterator[str]:
    del imports
    for module in modules:
        parts = module.path.split("/")
        if parts[0] != "functions" or len(parts) < 3:
            continue
        for depth in range(2, len(parts) - 1):
            if parts[depth] in SUB_PACKAGE_HOME:
                where = "/".join(parts[: depth + 1])
                yield f"{where}/: a {parts[depth]}/ sub-package; {SUB_PACKAGE_HOME[parts[depth]]}"
        filename = parts[-1]
        if filename == "_common.py":
            yield f"{module.path}: a _common.py; shared code of a domain goes to a module by role"
        elif filename.startswith("routes") and filename != "routes.py":
            yield f"{module.path}: a routes module besides routes.py; a domain has one routes.py"
