"""The report package's shape: no import cycle among its modules, and every text escaped by
the templates (a rule or cell named with `<script>` or `&` shows as text, never as markup)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import ungrok.report
from report.synthetic import make_run_dir
from ungrok.report import load_run, render_html
from ungrok.report.html import PAGE

PACKAGE = "ungrok.report"
ROOT = Path(ungrok.report.__file__).parent


def _modules() -> dict[str, Path]:
    """Dotted name -> file for every module under report/ (a package by its __init__.py)."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        out[".".join((PACKAGE, *parts))] = path
    return out


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """Every report module this one imports when it runs: at the top or inside a function,
    relative or absolute. `if TYPE_CHECKING:` blocks never run and are left out; so is the
    implicit import of a parent package, which Python has always finished first."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join([*pkg, base] if base else pkg)
            for a in node.names:  # `from pkg import module` imports the module; else a name of `base`
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m in known and m != module}


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    return {
        m: _imports(ast.parse(p.read_text(encoding="utf-8")), m, p.name == "__init__.py", set(mods))
        for m, p in mods.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def dfs(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n) :] + [n]
            if n not in state and (found := dfs(n)) is not None:
                return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := dfs(m)) is not None:
            return found
    return None


def test_the_checker_sees_lazy_and_relative_imports():
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "from . import b\n"
        "if TYPE_CHECKING:\n    from ungrok.report.c import C\n"
        "def f():\n    from ungrok.report.d import g\n"
    )
    known = {PACKAGE, *(f"{PACKAGE}.{x}" for x in "abcd")}
    assert _imports(tree, f"{PACKAGE}.a", False, known) == {f"{PACKAGE}.b", f"{PACKAGE}.d"}
    assert _imports(ast.parse("from ungrok.report import load_run"), f"{PACKAGE}.a", False, known) == {PACKAGE}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_report_modules_import_no_cycle():
    graph = import_graph()
    assert f"{PACKAGE}.html" in graph and f"{PACKAGE}.sections.hub" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_sections_import_no_section_and_not_the_page():
    """A section builds on common.py and the data below it, so sections stay independent."""
    graph = import_graph()
    for m, deps in graph.items():
        if m.startswith(f"{PACKAGE}.sections."):
            assert f"{PACKAGE}.html" not in deps, m
            assert not {d for d in deps if d.startswith(f"{PACKAGE}.sections.")}, m
        elif m not in (f"{PACKAGE}.html", PACKAGE):
            assert not {d for d in deps if d.startswith(f"{PACKAGE}.sections")}, m


EVIL_RULE = "<script>alert(1)</script>&rule"
EVIL_CELL = "a&b<i>"


def test_rule_and_cell_names_are_escaped(tmp_path):
    """Names come from the run's files; the templates escape them wherever they land (grid,
    support, ladders, focal rule, notes), so no cell has to be escaped by hand."""
    run_dir = make_run_dir(tmp_path)
    exp = json.loads((run_dir / "experiment.json").read_text())
    exp["cells"][EVIL_CELL] = {"kind": "built"}
    (run_dir / "experiment.json").write_text(json.dumps(exp))
    fates = json.loads((run_dir / "fates.json").read_text())
    rec = dict(fates["records"][0], family=EVIL_RULE, cell=EVIL_CELL)
    fates["records"].append(rec)
    (run_dir / "fates.json").write_text(json.dumps(fates))
    html = render_html(load_run(run_dir))
    assert "<script" not in html.lower() and "<i>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;rule" in html
    assert "a&amp;b&lt;i&gt;" in html
    assert html.count('<section id="') == len([s for s in PAGE if s[0] not in ("phase", "pilot", "hub", "mechanism")])
