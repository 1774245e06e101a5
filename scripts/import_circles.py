"""Print the import circles among the product's modules; exit 1 when there is one.

Every import counts: module level, inside functions, under ``TYPE_CHECKING``. A circle is a
strongly connected group of modules in that graph (Tarjan's algorithm). Run from the repository
root: ``python scripts/import_circles.py``; ``tests/config/test_import_circles.py`` runs it too.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIPPED_DIRECTORIES = {"migrations", "tests", "__pycache__"}


def product_packages(root: Path = ROOT) -> list[str]:
    """Return the top-level packages that are product code (apps and ``config``)."""
    return sorted(
        path.parent.name
        for path in root.glob("*/__init__.py")
        if path.parent.name not in {"tests", "bench", "scripts"}
    )


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Map each product module's dotted name to its file."""
    modules = {}
    for package in product_packages(root):
        for path in (root / package).rglob("*.py"):
            if SKIPPED_DIRECTORIES & set(path.relative_to(root).parts):
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Return, for each module, the product modules it imports anywhere in its body."""

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package
                    for _ in range(node.level - 1):
                        parent = parent.rpartition(".")[0]
                    base = f"{parent}.{base}" if base else parent
                targets.add(base)
                targets.update(f"{base}.{alias.name}" for alias in node.names)
        graph[module] = {found for name in targets if (found := owner(name)) not in (None, module)}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return each group of two or more modules that import each other, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found)


def main() -> int:
    graph = import_graph(module_files())
    found = circles(graph)
    edges = sum(len(targets) for targets in graph.values())
    print(f"{len(graph)} modules, {edges} imports (module level and in-function)")
    for group in found:
        print("circle:", " <-> ".join(group))
        for module in group:
            print(f"    {module} -> {', '.join(sorted(graph[module] & set(group)))}")
    if not found:
        print("no import circles")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
