"""The engine's modules import each other without cycles.

Function-level (lazy) and ``TYPE_CHECKING`` imports count: a lazy import that
only dodges a cycle is still one. The framework and app boundaries are
``lint-imports``' contracts (pyproject.toml).
"""

from __future__ import annotations

import grimp

ENGINE = "recommendations.engine"


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    edges = {
        m: sorted(graph.find_modules_directly_imported_by(m) & modules) for m in modules
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def test_the_engine_has_no_import_cycles() -> None:
    graph = grimp.build_graph("recommendations", cache_dir=None)
    modules = {m for m in graph.modules if m == ENGINE or m.startswith(ENGINE + ".")}
    assert len(modules) > 50
    cycles = _cycles(graph, modules)
    details = [
        f"{a} -> {b} (l.{', '.join(str(d['line_number']) for d in lines)})"
        for cycle in cycles
        for a in cycle
        for b in sorted(graph.find_modules_directly_imported_by(a) & set(cycle))
        if (lines := graph.get_import_details(importer=a, imported=b))
    ]
    assert not cycles, "import cycles:\n" + "\n".join(details)
