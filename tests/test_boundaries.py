"""The house's layers, as the README's architecture section writes them down, kept by a test.

Every import between our packages (module-level and inside functions alike) must point down
the list below; the pure core imports nothing of ours, the kernel edge only the core, the
agent never Django, the Neutron machinery no feature app; no package loops, no two files in an
import circle, and no product module imports a benchmark. A fresh interpreter proves the agent
and the core load without Django.
"""

from __future__ import annotations

import ast
import functools
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A package may import only packages of a lower rank (or its own).
LAYERS: list[tuple[str, ...]] = [
    ("sgweb.firewall",),  # pure core: compile (and its trace/ room)
    ("sgweb.wire",),  # pure contracts between the control plane and the agents
    ("sgweb.kernel",),  # the only place that touches the kernel
    ("worker",),  # the host agent: no Django
    ("sgweb.settings", "sgweb.gctune", "sgweb.dispatch"),  # the project's base modules
    ("sgweb.audit",),  # who changed what
    ("sgweb.tenancy",),  # the base app: projects, roles, tokens, quotas, errors, access
    ("sgweb.api",),  # the Neutron machinery
    ("sgweb.security",),
    ("sgweb.networks",),
    ("sgweb.packetlogs",),  # Neutron's logging API: which ports log
    ("sgweb.routers",),  # Neutron's routers (routing only) on network nodes
    ("sgweb.fwaas",),  # FWaaS v2: firewall rules, policies and groups on router ports
    ("sgweb.hostsync",),  # desired state, publishing, reconciling
    ("sgweb.accounting",),  # rule accounting: totals, series, the hits API, /metrics
    ("sgweb.droplog",),  # the drop log: logged flows, explained (needs compiled hosts)
    ("sgweb.lab",),
    ("sgweb.live",),
    ("sgweb.traces",),
    ("sgweb.operations",),  # manage.py up, the demo
    ("sgweb.dashboard",),
    ("sgweb.urls", "sgweb.asgi", "sgweb.wsgi", "sgweb.celery"),  # the project's shell
]
RANK = {package: rank for rank, group in enumerate(LAYERS) for package in group}
PURE = {"sgweb.firewall": set(), "sgweb.wire": set(), "sgweb.kernel": {"sgweb.firewall"}}
AGENT_MAY_IMPORT = {"sgweb.firewall", "sgweb.wire", "sgweb.kernel"}
API_MAY_IMPORT = {"sgweb.tenancy", "sgweb.audit", "sgweb.dispatch", "sgweb.settings"}


def package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "worker":
        return "worker"
    if parts[0] != "sgweb" or len(parts) < 2:
        return None
    return f"sgweb.{parts[1]}"


@functools.cache
def parsed(path: Path) -> ast.Module:
    """A source file's syntax tree, parsed once for all the tests of a run."""
    return ast.parse(path.read_text())


def _modules() -> dict[str, Path]:
    found = {}
    for top in ("sgweb", "worker"):
        for path in (ROOT / top).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[module.removesuffix(".__init__")] = path
    return found


@functools.cache
def import_edges() -> dict[str, set[str]]:
    """package -> the packages of ours it imports (including `from sgweb import dispatch`)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in _modules().items():
        source = package_of(module)
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                target = package_of(name)
                if target and source and target != source and target in RANK:
                    edges[source].add(target)
    return edges


def _import_nodes(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """The import statements that run (at import time or in a function), not those under
    `if TYPE_CHECKING:`, which only the type checker follows."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
        else:
            pending.extend(ast.iter_child_nodes(node))
    return found


def _imported_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.module and not node.level:
        return [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def module_edges() -> dict[str, set[str]]:
    """module -> the modules of ours it imports (at import time or inside a function). An
    import of a module's own parent package is no edge: Python runs the package first anyway."""
    modules = _modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        tree = parsed(path)
        for node in _import_nodes(tree):
            for name in _imported_names(node):
                if name in modules and name != module and not module.startswith(name + "."):
                    edges[module].add(name)
    return edges


def test_every_package_of_ours_has_a_place_in_the_layers():
    packages = {package_of(module) for module in _modules()} - {None}
    assert packages <= set(RANK), sorted(packages - set(RANK))


def test_every_import_points_down_the_layers():
    upward = [
        f"{source} -> {target}"
        for source, targets in import_edges().items()
        for target in targets
        if RANK[target] >= RANK[source]
    ]
    assert upward == []


def test_no_package_loops():
    assert _cycles(import_edges()) == []


def test_no_two_files_import_each_other_in_a_circle():
    """A circle of imports (such as traces/actions.py <-> traces/proof.py was, one side hidden
    inside a function) means neither file can be read without the other; `if TYPE_CHECKING:`
    imports are no circle."""
    assert _cycles(module_edges()) == []


def test_no_product_module_imports_a_benchmark_or_a_test_tool():
    offenders = sorted(
        f"{module}: {name}"
        for module, path in _modules().items()
        for node in _import_nodes(parsed(path))
        for name in _imported_names(node)
        if name.split(".")[0] in ("bench", "tests")
    )
    assert offenders == []


def test_the_core_and_the_contracts_import_nothing_of_ours_and_the_kernel_only_the_core():
    edges = import_edges()
    for package, allowed in PURE.items():
        assert edges.get(package, set()) <= allowed, package


def test_the_agent_imports_only_the_core_the_contracts_and_the_kernel():
    assert import_edges().get("worker", set()) <= AGENT_MAY_IMPORT


def test_the_neutron_machinery_imports_no_feature_app():
    assert import_edges().get("sgweb.api", set()) <= API_MAY_IMPORT


def test_the_agent_and_the_core_load_in_a_fresh_interpreter_without_django():
    """Every module of the agent, the core, the contracts and the kernel edge (the agent's
    Celery app aside: celery itself imports the bare django package, see the next test)."""
    pure = [
        module
        for module in _modules()
        if package_of(module) in {"worker", *PURE}
        and module not in ("worker.app", "worker.__main__")
        and not module.endswith(".__main__")
    ]
    above = [package for package in RANK if RANK[package] > RANK["worker"]]
    probe = (
        "import importlib, sys\n"
        f"for module in {sorted(pure)!r}:\n"
        "    importlib.import_module(module)\n"
        "ours = ('django', 'rest_framework', 'channels')\n"
        f"apps = {tuple(above)!r}\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ours\n"
        "       or any(m == a or m.startswith(a + '.') for a in apps)]\n"
        "print('\\n'.join(sorted(bad)))\n"
    )
    assert {"worker.agent", "sgweb.firewall.compiler", "sgweb.kernel.apply"} <= set(pure)
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.split() == []


def test_the_agents_celery_app_sets_no_django_up_even_when_the_settings_are_in_the_environment():
    """A test run or a control-plane shell exports DJANGO_SETTINGS_MODULE; Celery's Django
    fix-up would then set the whole project up in every agent it starts (seconds under load)."""
    probe = (
        "import sys\n"
        "import worker.app\n"
        "assert worker.app.app._fixups == [], worker.app.app._fixups\n"
        "worker.app.app.loader.init_worker()\n"
        "# celery imports the bare django package for a version check; nothing is set up\n"
        "setup = ('django.apps', 'django.db', 'django.urls', 'sgweb.settings', 'sgweb.urls')\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith(setup))))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "sgweb.settings", "SGWEB_HOST": "compute1"}
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.split() == []
