"""The package's layout rules (plugins/hatchway/README.md), checked on the import graph."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "plugins" / "hatchway"
DEV = REPO / "hatchway_dev"
# Airflow-facing layers; the concern packages (domain, workspace, jobs, ...) sit below them.
AIRFLOW_LAYERS = {"operators", "triggers", "sensors", "notifiers", "plugin", "dag_defaults", "provider_info"}


def _module(path: Path, root: Path, top: str) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join((top, *parts)).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (both run, sooner or later)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _graph(root: Path, top: str) -> dict[str, set[str]]:
    return {_module(p, root, top): _imports(p) for p in root.rglob("*.py") if "__pycache__" not in p.parts}


def test_production_imports_nothing_of_the_dev_stack_simulators_or_tests():
    offenders = {mod: sorted(i for i in imports if i.split(".")[0] in {"hatchway_dev", "include", "tests",
                                                                          "conftest", "support"})
                 for mod, imports in _graph(PACKAGE, "hatchway").items()}
    assert {m: i for m, i in offenders.items() if i} == {}


def test_concern_packages_never_import_the_airflow_layer():
    graph = _graph(PACKAGE, "hatchway")
    wrong = {}
    for mod, imports in graph.items():
        layer = mod.split(".")[1] if "." in mod else ""
        if layer in AIRFLOW_LAYERS or layer in {"api"}:  # the door reads Airflow (runs, Variables) itself
            continue
        up = sorted(i for i in imports if i.startswith("hatchway.") and i.split(".")[1] in AIRFLOW_LAYERS)
        if up:
            wrong[mod] = up
    assert wrong == {}


def test_the_domain_imports_neither_airflow_nor_cloud_sdks():
    heavy = ("airflow", "boto3", "botocore", "google", "confluent_kafka", "kubernetes", "httpx")
    for mod, imports in _graph(PACKAGE / "domain", "hatchway.domain").items():
        assert not [i for i in imports if i.split(".")[0] in heavy], mod


def test_no_import_cycles_in_the_package_or_the_dev_stack():
    graph = {**_graph(PACKAGE, "hatchway"), **_graph(DEV, "hatchway_dev")}
    modules = set(graph)
    edges = defaultdict(set)
    for mod, imports in graph.items():
        for name in imports:
            # "from a.b import c" names a.b.c: a module if there is one, else a name in a.b.
            target = name if name in modules else name.rpartition(".")[0]
            if target in modules and target != mod and not mod.startswith(target + "."):
                edges[mod].add(target)
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for mod in sorted(modules):
        if mod not in state:
            visit(mod, [mod])
    assert cycles == []
