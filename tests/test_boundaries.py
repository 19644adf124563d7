"""The house's layers, as the README's architecture section writes them down, kept by a test.

Every import between our packages (module-level and inside functions alike) must point down
the list below; the pure core imports nothing of ours, the kernel edge only the core, the
agent never Django, the Neutron machinery no feature app. A fresh interpreter proves the agent
and the core load without Django.
"""

from __future__ import annotations

import ast
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


def _modules() -> dict[str, Path]:
    found = {}
    for top in ("sgweb", "worker"):
        for path in (ROOT / top).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[module.removesuffix(".__init__")] = path
    return found


def import_edges() -> dict[str, set[str]]:
    """package -> the packages of ours it imports (including `from sgweb import dispatch`)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in _modules().items():
        source = package_of(module)
        for node in ast.walk(ast.parse(path.read_text())):
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


def test_the_core_and_the_contracts_import_nothing_of_ours_and_the_kernel_only_the_core():
    edges = import_edges()
    for package, allowed in PURE.items():
        assert edges.get(package, set()) <= allowed, package


def test_the_agent_imports_only_the_core_the_contracts_and_the_kernel():
    assert import_edges().get("worker", set()) <= AGENT_MAY_IMPORT


def test_the_neutron_machinery_imports_no_feature_app():
    assert import_edges().get("sgweb.api", set()) <= API_MAY_IMPORT


def test_the_agent_and_the_core_load_in_a_fresh_interpreter_without_django():
    probe = (
        "import sys\n"
        "import worker.agent, worker.live, worker.tracing, worker.store\n"
        "import sgweb.firewall.compiler, sgweb.firewall.trace.flow, sgweb.kernel.apply\n"
        "ours = ('django', 'rest_framework', 'channels')\n"
        "apps = ('sgweb.tenancy', 'sgweb.audit', 'sgweb.api', 'sgweb.security',\n"
        "        'sgweb.networks', 'sgweb.hostsync', 'sgweb.lab', 'sgweb.live',\n"
        "        'sgweb.traces', 'sgweb.operations', 'sgweb.dashboard', 'sgweb.dispatch')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ours\n"
        "       or any(m == a or m.startswith(a + '.') for a in apps)]\n"
        "print('\\n'.join(sorted(bad)))\n"
    )
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
