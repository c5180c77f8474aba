"""The import graph of the ungrok package, read with `ast` (nothing is imported).

Nodes are modules by dotted name (a package by its `__init__.py`); an edge A -> B says that
running A can import B first. What counts as an edge:

* every `import X` / `from X import ...` that can run: at module level or inside a function,
  relative or absolute; `if TYPE_CHECKING:` blocks never run and are left out;
* `from P import name` imports the submodule P.name when there is one, else the module P;
* importing a module also runs the `__init__.py` of each package above it, so A -> P.m adds
  A -> P too, unless P is a package above A itself (Python has started it before A: the
  implicit import of one's own parent is never an edge);
* a package `__init__.py` that re-exports names lazily (a module `__getattr__` over an
  `_EXPORTS` table of name -> module) imports nothing until a name is used, so the edge goes
  from the module that uses the name: `from P import name` -> P and the module behind name.

Hence a package's `__init__.py` importing its own submodules is an ordinary edge P -> P.m and
no cycle by itself; it is one only when a module below (or reached from) P.m imports P back
explicitly (`from ungrok.P import name` of a re-exported name), or when P.m imports some
Q.x whose package `__init__` imports its way back into P.m.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import ungrok

PACKAGE = "ungrok"
ROOT = Path(ungrok.__file__).parent


def modules(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted name -> file for every module under root (a package by its __init__.py)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        out[".".join((package, *parts))] = path
    return out


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def lazy_exports(tree: ast.AST, package: str) -> dict[str, str]:
    """name -> module for a package __init__ that defines `__getattr__` (a function, or
    `__getattr__ = lazy_getattr(__name__, _EXPORTS)`) over `_EXPORTS` (values are dotted
    names, or a submodule's short name); {} for any other module."""
    body = getattr(tree, "body", [])
    if not any(
        (isinstance(n, ast.FunctionDef) and n.name == "__getattr__")
        or (isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__getattr__" for t in n.targets))
        for n in body
    ):
        return {}
    for n in body:
        if (
            isinstance(n, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in n.targets)
            and isinstance(n.value, ast.Dict)
        ):
            out = {}
            for k, v in zip(n.value.keys, n.value.values, strict=True):
                if isinstance(k, ast.Constant) and isinstance(v, ast.Constant) and isinstance(v.value, str):
                    out[k.value] = v.value if "." in v.value else f"{package}.{v.value}"
            return out
    return {}


def raw_imports(tree: ast.AST, module: str, is_package: bool) -> set[tuple[str, str | None]]:
    """(base module, imported name or None) for every import that can run."""
    found: set[tuple[str, str | None]] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update((a.name, None) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join([*pkg, base] if base else pkg)
            found.update((base, a.name) for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def resolve(
    module: str,
    imports: Iterable[tuple[str, str | None]],
    known: set[str],
    lazy: dict[str, dict[str, str]],
) -> set[str]:
    """The known modules this module's imports run (see the module docstring)."""
    targets: set[str] = set()
    for base, name in imports:
        if name is not None and f"{base}.{name}" in known:
            targets.add(f"{base}.{name}")
        else:
            targets.add(base)
            if name is not None and name in lazy.get(base, {}):
                targets.add(lazy[base][name])
    own = set(_ancestors(module))
    out: set[str] = set()
    for t in targets:
        out.add(t)
        out.update(a for a in _ancestors(t) if a not in own)
    return {m for m in out if m in known and m != module}


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    mods = modules(root, package)
    trees = {m: ast.parse(p.read_text(encoding="utf-8")) for m, p in mods.items()}
    lazy = {m: ex for m, t in trees.items() if mods[m].name == "__init__.py" and (ex := lazy_exports(t, m))}
    known = set(mods)
    return {
        m: resolve(m, raw_imports(t, m, mods[m].name == "__init__.py"), known, lazy) for m, t in trees.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(out)


def cycle_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One cycle through the first module of a component, as a path (first repeated at the end)."""
    comp = set(component)
    start = component[0]
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:  # breadth-first, so the cycle shown is a shortest one
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [*reversed(path), start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start]
