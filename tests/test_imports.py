"""The package's import graph has no circles: every ``import`` and ``from ... import`` of
src/rrrnet, at module level or inside a function, read with ``ast`` (nothing is imported).

An edge goes to the module an import statement names: ``from . import deploy`` depends on
``rrrnet.deploy``, not on ``rrrnet/__init__.py``; ``from . import __version__`` depends on the
package's ``__init__`` (it defines the name). The parent packages that Python runs first are not
edges: they are not what the code uses. ``rrrnet/__init__``'s lazy exports
(``importlib.import_module``) are not statements and draw no edge.
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parents[1] / "src"


def modules_of(src: Path, package: str) -> dict[str, Path]:
    """``{dotted name: file}`` of every module of ``package`` under ``src`` (a package's name
    stands for its ``__init__.py``)."""
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _target(name: str, modules: dict[str, Path]) -> str | None:
    """The module ``name`` denotes: itself, or the closest enclosing module that exists
    (``rrrnet.x.attr`` -> ``rrrnet.x``); None outside the package."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(src: Path, package: str) -> dict[str, set[str]]:
    """``{module: modules it imports}`` of ``package``, function-level imports included."""
    modules = modules_of(src, package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        here = name if is_package else name.rpartition(".")[0]   # what `from .` means
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")
                    if node.level > 1:
                        anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                # `from base import x`: the submodule base.x when there is one, else base itself
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                         for a in node.names]
            for imported in names:
                target = _target(imported, modules)
                if target is not None:
                    graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, and the modules that import
    themselves (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def describe(graph: dict[str, set[str]], component: list[str]) -> str:
    inside = set(component)
    edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & inside)]
    return f"{', '.join(component)} ({'; '.join(edges)})"


def test_the_package_has_no_import_circle():
    graph = import_graph(SRC, "rrrnet")
    assert len(graph) > 40 and "rrrnet.cli" in graph and "rrrnet.data.sources" in graph
    assert modules_of(SRC, "rrrnet")["rrrnet.data"].name == "__init__.py"
    found = circles(graph)
    assert not found, "import circles (function-level imports count): " + \
        " | ".join(describe(graph, c) for c in found)


# The detector itself, on small packages written here.

def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_function_level_import_closes_a_circle(tmp_path):
    src = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from .b import helper\n",
        "b.py": "def helper():\n    from . import a\n    return a\n",
        "c.py": "import pkg.a\n",
    })
    graph = import_graph(src, "pkg")
    assert graph["pkg.b"] == {"pkg.a"} and graph["pkg.c"] == {"pkg.a"}
    assert circles(graph) == [["pkg.a", "pkg.b"]]
    assert describe(graph, ["pkg.a", "pkg.b"]) == "pkg.a, pkg.b (pkg.a -> pkg.b; pkg.b -> pkg.a)"


def test_submodules_and_the_package_init_are_told_apart(tmp_path):
    """``from . import x`` names the submodule x; ``from . import NAME`` the ``__init__`` that
    defines it; relative imports of a sub-package resolve against it. A lazy-export ``__init__``
    (no import statements of its submodules) closes no circle."""
    src = _package(tmp_path, {
        "__init__.py": "import importlib\nVERSION = 1\n"
                       "def __getattr__(n):\n    return importlib.import_module('pkg.' + n)\n",
        "a.py": "from . import b, VERSION\n",
        "b.py": "from .sub.leaf import thing\n",
        "sub/__init__.py": "from .leaf import thing\n",
        "sub/leaf.py": "from ..a import VERSION as V\nthing = 1\n",
    })
    graph = import_graph(src, "pkg")
    assert graph["pkg.a"] == {"pkg.b", "pkg"} and graph["pkg"] == set()
    assert graph["pkg.sub"] == {"pkg.sub.leaf"} and graph["pkg.sub.leaf"] == {"pkg.a"}
    assert circles(graph) == [["pkg.a", "pkg.b", "pkg.sub.leaf"]]


def test_a_module_importing_itself_is_a_circle(tmp_path):
    src = _package(tmp_path, {"__init__.py": "", "a.py": "def f():\n    import pkg.a\n"})
    assert circles(import_graph(src, "pkg")) == [["pkg.a"]]
