"""The shape of agent/ stays as docs/architecture.md draws it: few root modules, none over 500 lines, no
import cycle between any two modules."""

from __future__ import annotations

from pathlib import Path

import grimp

AGENT = Path(__file__).resolve().parents[2] / "agent"


def test_the_root_holds_at_most_seven_modules() -> None:
    """agent/ itself holds at most 7 modules; everything else lives in a package named for its job."""
    assert len(list(AGENT.glob("*.py"))) <= 7


def test_no_module_is_over_500_lines() -> None:
    """Every module of the agent is at most 500 lines."""
    long = {
        str(p.relative_to(AGENT)): n
        for p in AGENT.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 500
    }
    assert long == {}


def test_no_import_cycle() -> None:
    """No module imports, directly or through others, a module that imports it back (TYPE_CHECKING
    imports included)."""
    graph = grimp.build_graph("agent", include_external_packages=False)
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    assert cycles == []
