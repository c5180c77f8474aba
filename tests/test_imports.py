"""No import cycle among ungrok's modules, counting the imports inside functions too.

The graph (tests/import_graph.py, read with `ast`, nothing imported) has an edge A -> B for
every `import` / `from ... import` in A that can run: at module level or inside a function,
relative or absolute; `from P import name` is the submodule P.name when there is one;
`if TYPE_CHECKING:` blocks are left out (they never run). The package rule:

* importing P.m runs P's `__init__.py` first, so A -> P.m adds A -> P as well, except when
  P is a package above A itself: Python has started A's own parents before A, so that
  implicit import is never an edge;
* a package `__init__.py` importing its own submodules is an ordinary edge P -> P.m, and no
  cycle by itself, since P.m never imports P implicitly;
* a submodule that imports its own package explicitly (`from ungrok.P import name` of a
  re-exported name) does add P.m -> P, so with P -> P.m that is a cycle;
* a lazy re-export (`__getattr__` over `_EXPORTS` in a package `__init__`) imports its module
  when the name is used, so `from P import name` is an edge to P and to the module behind name.

A cycle is a strongly connected component of more than one module; the message lists each
one and a shortest cycle through it. A cycle is broken by moving the shared code into the
module that owns it (below both), never by hiding an import.
"""

from __future__ import annotations

import ast

from import_graph import cycle_path, cycles, import_graph, lazy_exports, raw_imports, resolve


def _edges(src: str, module: str, known: set[str], *, is_package: bool = False, lazy=None) -> set[str]:
    return resolve(module, raw_imports(ast.parse(src), module, is_package), known, lazy or {})


def test_the_checker_sees_lazy_relative_and_package_imports():
    known = {"u", "u.p", "u.p.a", "u.p.b", "u.p.c", "u.p.d", "u.q", "u.q.x", "u.q.y"}
    src = (
        "from typing import TYPE_CHECKING\n"
        "from . import b\n"
        "if TYPE_CHECKING:\n    from u.p.c import C\n"
        "def f():\n    from u.p.d import g\n"
    )
    # relative and function-level imports count; TYPE_CHECKING ones and the own package do not
    assert _edges(src, "u.p.a", known) == {"u.p.b", "u.p.d"}
    # importing another package's module runs that package's __init__ too
    assert _edges("def f():\n    import u.q.x\n", "u.p.a", known) == {"u.q.x", "u.q"}
    # an explicit import of the own package is an edge (a re-exported name, not a submodule)
    assert _edges("from u.p import name\n", "u.p.a", known) == {"u.p"}
    assert _edges("from u.p import b\n", "u.p.a", known) == {"u.p.b"}
    # a package __init__ importing its own submodules
    assert _edges("from .a import f\nfrom . import b\n", "u.p", known, is_package=True) == {"u.p.a", "u.p.b"}
    # a lazy re-export is an edge from the user of the name to the module behind it
    exports = lazy_exports(
        ast.parse("_EXPORTS = {'f': 'x', 'g': 'u.q.y'}\ndef __getattr__(name):\n    pass\n"), "u.q"
    )
    assert exports == {"f": "u.q.x", "g": "u.q.y"}
    assert _edges("from u.q import g\n", "u.p.a", known, lazy={"u.q": exports}) == {"u.q", "u.q.y"}
    assert lazy_exports(ast.parse("_EXPORTS = {'f': 'x'}\n"), "u.q") == {}
    shared = "_EXPORTS = {'f': 'x'}\n__getattr__ = lazy_getattr(__name__, _EXPORTS)\n"
    assert lazy_exports(ast.parse(shared), "u.q") == {"f": "u.q.x"}  # the shared helper's form


def test_cycles_are_components_of_more_than_one_module():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"f"}, "f": {"e"}, "g": set()}
    assert cycles(graph) == [["a", "b", "c"], ["e", "f"]]
    assert cycle_path(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_the_graph_covers_the_package():
    graph = import_graph()
    assert {"ungrok.cli", "ungrok.report.sections.hub", "ungrok.corpus.build", "ungrok.prereg"} <= set(graph)
    assert "ungrok.mech.ngram" in graph["ungrok.mech.instruments"]  # a function-level import
    assert "ungrok.prereg.registry" in graph["ungrok.prereg"]  # the package's own __init__
    assert "ungrok.prereg" in graph["ungrok.experiment.tasks"]  # `from ungrok.prereg import ...`


def test_no_import_cycle():
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(
        f"  {' -> '.join(cycle_path(graph, c))}   (component: {', '.join(c)})" for c in found
    )
