"""The shape of the ``agan`` code: no import cycles between its modules, no file over 350 lines, no function
over 80 lines. Static (``ast``): nothing of agan is imported or run.

The import graph has one node per module of ``agan/**/*.py`` (a package's ``__init__.py`` is the package:
``agan/infer/__init__.py`` is ``agan.infer``) and an edge for every import statement, at module level or
inside a function (or an ``if``, ``try``, ...):

    import agan.x.y                    -> agan.x.y
    from agan.x import y               -> agan.x.y when y is a module, else agan.x (its __init__)
    from . import y / from ..x import y (relative: resolved against the importing module's package)
    agan.x.y.z where only agan.x.y is a module -> agan.x.y (the longest prefix that is one)

and, as Python runs them, an edge to every package above the target that is not above the importer (importing
``agan.models.generator`` first runs ``agan/models/__init__.py``). The root package ``agan`` is left out of
those: every module needs it, and its ``__init__`` only reads the CPU cap and the config.
A cycle is a strongly connected component of more than one module.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "agan"
MAX_FILE_LINES = 350
MAX_FUNCTION_LINES = 80


# ----------------------------------------------------------------------------------------------
# the import graph
# ----------------------------------------------------------------------------------------------


def find_modules(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under ``root/package``."""
    mods = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def _longest_module(name: str, mods: dict[str, Path]) -> str | None:
    """``name`` or its longest dotted prefix that is a module (``agan.x.fn`` -> ``agan.x``)."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.Import | ast.ImportFrom, package: str, mods: dict[str, Path]) -> list[str]:
    """The dotted names one import statement brings in (``package``: the importer's package)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: level 1 is the importer's own package, 2 its parent, ...
        parts = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(parts + ([base] if base else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]


def module_imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The modules of ``mods`` that module ``name`` (file ``path``) imports, anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    above = {name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)}  # the importer's packages
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        for target in _targets(node, package, mods):
            module = _longest_module(target, mods)
            if module is None:
                continue  # not ours (torch, numpy, ...)
            found.add(module)
            parts = module.split(".")
            found.update(p for p in (".".join(parts[:i]) for i in range(2, len(parts)))
                         if p in mods and p not in above)  # the packages Python runs on the way
    found.discard(name)  # an explicit ``from agan import NAME`` stays: an edge to agan/__init__
    return found


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    mods = find_modules(root, package)
    return {name: module_imports(name, path, mods) for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, edges = work[-1]
            w = next(edges, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
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
    return found


def cycle_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One cycle through the component's first module: [a, b, ..., a] (shortest, by breadth-first search)."""
    start, members = component[0], set(component)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(graph[v] & members):
            if w == start:  # back at the start: the path to v, then the edge v -> start
                path = [v]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if w not in came_from:
                came_from[w] = v
                queue.append(w)
    raise AssertionError(f"no cycle through {start} in {component}")


# ----------------------------------------------------------------------------------------------
# the tests
# ----------------------------------------------------------------------------------------------


def test_agan_has_no_import_cycles():
    graph = import_graph()
    assert "agan.infer" in graph and "agan.accel.tune" in graph  # the walk found the package
    found = cycles(graph)
    lines = [f"{len(c)} modules import each other: {', '.join(c)}\n"
             f"    e.g. {' -> '.join(cycle_path(graph, c))}" for c in found]
    assert not found, "import cycles in agan:\n" + "\n".join(lines)


def test_no_file_and_no_function_is_too_long():
    too_long: list[str] = []
    for path in find_modules().values():
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(ROOT)
        n = len(text.splitlines())
        if n > MAX_FILE_LINES:
            too_long.append(f"{rel}: {n} lines (at most {MAX_FILE_LINES})")
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1  # from `def` to the last line of the body
                if n > MAX_FUNCTION_LINES:
                    too_long.append(f"{rel}:{node.lineno}: {node.name}() is {n} lines "
                                    f"(at most {MAX_FUNCTION_LINES})")
    assert not too_long, "too long:\n" + "\n".join(too_long)


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_graph_sees_every_kind_of_import(tmp_path):
    """The checker itself, on a made-up package: each form of import is an edge, at module or function
    level; only the package's own modules count."""
    _write(tmp_path, {
        "pkg/__init__.py": "from pkg.a import f\n",
        "pkg/a.py": "import os\nimport pkg.sub.b\n\ndef f():\n    from pkg.sub import c  # a submodule\n",
        "pkg/sub/__init__.py": "from .b import g  # relative\n",
        "pkg/sub/b.py": "from .. import a\nfrom ..a import f\n\ndef g():\n    import numpy\n",
        "pkg/sub/c.py": "from pkg.sub import g  # a name in the package's __init__\nimport pkg.a.f\n",
        "pkg/d.py": "x = 'import pkg.a'  # text, not an import\n",
    })
    graph = import_graph(tmp_path, "pkg")
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.sub.b", "pkg.sub", "pkg.sub.c"},  # pkg.sub: run on the way to pkg.sub.b
        "pkg.sub": {"pkg.sub.b"},
        "pkg.sub.b": {"pkg.a"},
        "pkg.sub.c": {"pkg.sub", "pkg.a"},  # its own package, named: an edge (on the way: none)
        "pkg.d": set(),
    }
    assert cycles(graph) == [["pkg.a", "pkg.sub", "pkg.sub.b", "pkg.sub.c"]]
    assert cycle_path(graph, cycles(graph)[0]) == ["pkg.a", "pkg.sub.b", "pkg.a"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_an_import_of_the_root_package_is_an_edge(tmp_path):
    """``from pkg import NAME`` runs pkg/__init__: a module that the root package imports back is a circle."""
    _write(tmp_path, {"pkg/__init__.py": "from pkg.cfg import X\n",
                      "pkg/cfg.py": "X = 1\n\ndef f():\n    from pkg import helper\n"})
    graph = import_graph(tmp_path, "pkg")
    assert graph == {"pkg": {"pkg.cfg"}, "pkg.cfg": {"pkg"}}
    assert cycles(graph) == [["pkg", "pkg.cfg"]]


def test_the_length_limits_count_from_def_to_the_last_line(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES - 1))
    tree = ast.parse(f"@staticmethod\ndef f():\n{body}")
    (fn,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    assert fn.end_lineno - fn.lineno + 1 == MAX_FUNCTION_LINES  # the decorator is not counted
