"""No import cycle between packages: each top-level package, and each sub-package or module of ``syncbridge``.

``lint-imports`` holds the layers; this holds the rest of the graph (two packages
of one layer, or a package and one it sits beside) free of cycles too.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import grimp
import pytest

ROOTS = ("syncbridge", "webhooks", "consumers", "producers", "contracts", "simulators", "dashboard")


def package_of(module: str) -> str:
    """``syncbridge.handlers.crm_to_ameise`` -> ``syncbridge.handlers``; ``webhooks.admin`` -> ``webhooks``."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "syncbridge" and len(parts) > 1 else parts[0]


def cycles(edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm), each sorted."""
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in edges:
        graph[source].add(target)
        graph.setdefault(target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_check_finds_a_cycle_and_only_cycles():
    assert cycles([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e")]) == [["a", "b", "c"]]
    assert cycles([("a", "b"), ("b", "c"), ("a", "c")]) == []
    assert package_of("syncbridge.handlers.crm_to_ameise") == "syncbridge.handlers"
    assert package_of("syncbridge.ports") == "syncbridge.ports"
    assert package_of("webhooks.admin") == "webhooks"


@pytest.mark.parametrize("type_checking", [False, True], ids=["run-time imports", "annotations too"])
def test_no_import_cycle_between_packages(type_checking):
    graph = grimp.build_graph(*ROOTS, exclude_type_checking_imports=not type_checking)
    edges = {(package_of(module), package_of(imported))
             for module in graph.modules
             for imported in graph.find_modules_directly_imported_by(module)
             if package_of(module) != package_of(imported)}

    assert len(edges) > 40                  # the graph was read
    assert cycles(edges) == []
