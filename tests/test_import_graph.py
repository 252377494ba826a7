"""The package's import graph, read off the source (every import, also those inside functions): no cycle, and
nothing below the CLI imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "dp_pose_zoo"
CLI_LAYER = ("dp_pose_zoo.cli", "dp_pose_zoo.commands")


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def _imported(name: str, path: Path, node: ast.Import | ast.ImportFrom, mods: dict[str, Path]) -> set[str]:
    """The package's modules ``node`` imports (``from . import x`` names the submodule x when there is one)."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        base = ".".join((package[:len(package) - node.level + 1] if node.level else []) +
                        ([node.module] if node.module else []))
        targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
    found = set()
    for target in targets:
        while target and target not in mods:  # an attribute of a module: the module
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: set().union(*(_imported(name, path, node, mods) for node in ast.walk(ast.parse(path.read_text()))
                                if isinstance(node, (ast.Import, ast.ImportFrom))))
            for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), and modules importing themselves."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_real_imports_and_the_finder_sees_a_cycle():
    graph = import_graph()
    assert "dp_pose_zoo.release" in graph["dp_pose_zoo.hub"]  # module level
    assert "dp_pose_zoo.training.checkpoint" in graph["dp_pose_zoo.commands.audit"]  # inside a function
    assert "dp_pose_zoo.export.parity" in graph["dp_pose_zoo.export.int8"]  # from . import parity
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_package_has_no_import_cycle():
    assert cycles(import_graph()) == []


def test_nothing_below_the_cli_imports_it():
    """Only the CLI's own modules and the entry points (``__main__``) import ``cli`` or ``commands``."""
    upward = {name: sorted(d for d in deps if d.startswith(CLI_LAYER))
              for name, deps in import_graph().items()
              if not name.startswith(CLI_LAYER) and not name.endswith("__main__")}
    assert {name: deps for name, deps in upward.items() if deps} == {}


def test_the_runtime_does_not_import_the_video_pipeline():
    """``video`` sits on the runtime (the pose model it runs on frames); the runtime never needs it."""
    upward = {name: sorted(d for d in deps if d.startswith("dp_pose_zoo.video"))
              for name, deps in import_graph().items() if name.startswith("dp_pose_zoo.runtime")}
    assert {name: deps for name, deps in upward.items() if deps} == {}
