"""The package's layers point one way: no module imports, however late, a module that imports it back.

The graph counts every import statement in a module, at module level or inside a function (a lazy import
still ties the two modules together), in every form: `import a.b`, `from a import b` where b is a
submodule, and relative imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import whisper_adapt

PACKAGE_DIR = Path(whisper_adapt.__file__).parent


def module_names(package_dir: Path) -> dict[str, Path]:
    """Each module of the package by dotted name; a package's `__init__.py` is the package itself."""
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The package modules one import statement in `module` loads by name."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    submodules = {f"{source}.{alias.name}" for alias in node.names} & known
    # `from pkg import sub, name`: sub is a module of its own, name comes from pkg/__init__.py
    names_left = any(f"{source}.{alias.name}" not in known for alias in node.names)
    return submodules | ({source} if names_left else set())


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its body."""
    modules = module_names(package_dir)
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets |= _imported(node, name, path.name == "__init__.py", known)
        graph[name] = (targets & known) - {name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per back edge met in a depth-first walk (empty when the graph is acyclic)."""
    state: dict[str, str] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_the_package_has_no_import_cycle():
    graph = import_graph(PACKAGE_DIR)
    assert "whisper_adapt.cli" in graph and "whisper_adapt.train.trainer" in graph
    cycles = [" → ".join(cycle) for cycle in find_cycles(graph)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def _package(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / "pkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "pkg"


def test_lazy_relative_and_submodule_imports_all_count(tmp_path):
    package = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "def f():\n    from .sub import b\n",
        "sub/__init__.py": "from .. import a as _a\n",
        "sub/b.py": "import pkg.c\n",
        "c.py": "from pkg import a, __doc__\n",
        "d.py": "from pkg.sub import b\n",
    })
    graph = import_graph(package)
    assert graph == {
        "pkg": set(), "pkg.a": {"pkg.sub.b"}, "pkg.sub": {"pkg.a"}, "pkg.sub.b": {"pkg.c"},
        "pkg.c": {"pkg", "pkg.a"}, "pkg.d": {"pkg.sub.b"},
    }
    assert find_cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]


def test_an_acyclic_graph_has_no_cycle():
    assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []
