"""Architecture: the import graph of research_lib has no circles, only research_lib/cli/
parses arguments or prints, and no file grows past MAX_LINES.

The graph is read from the source (AST), not by importing: every ``import`` and ``from``
statement inside research_lib, at module level, inside functions and under
``TYPE_CHECKING`` alike (an import moved into a function hides a circle, it does not remove
it). Each allow-list below names what is known today; an entry that no longer holds fails
too, so the lists only shrink.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.kit.paper import write_config

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "research_lib"
MAX_LINES = 600

# import circles known today (each the set of modules of one strongly connected component)
ALLOWED_CYCLES: set[frozenset[str]] = set()  # none left: keep it that way

# files over MAX_LINES today
ALLOWED_LONG: set[str] = set()


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    where: str  # "module", "function" or "TYPE_CHECKING"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool,
             modules: dict[str, Path]) -> list[str]:
    """The research_lib modules an import statement names (a submodule when ``from pkg
    import sub`` names one, else the package or module itself)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in modules]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    out = []
    for a in node.names:
        sub = f"{target}.{a.name}"
        if sub in modules:
            out.append(sub)
        elif target in modules:
            out.append(target)
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def import_edges(source: str, module: str, is_package: bool,
                 modules: dict[str, Path]) -> list[Edge]:
    edges: list[Edge] = []

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            here = where
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                here = "function"
            elif isinstance(child, ast.If) and _is_type_checking(child) and where == "module":
                here = "TYPE_CHECKING"
            if isinstance(child, ast.Import | ast.ImportFrom):
                edges.extend(Edge(module, t, child.lineno, here)
                             for t in _targets(child, module, is_package, modules)
                             if t != module)
            visit(child, here)

    visit(ast.parse(source), "module")
    return edges


def import_graph() -> dict[str, list[Edge]]:
    modules = package_modules()
    return {m: import_edges(p.read_text(encoding="utf-8"), m, p.name == "__init__.py", modules)
            for m, p in modules.items()}


def cycles(graph: dict[str, list[Edge]]) -> list[tuple[frozenset[str], list[Edge]]]:
    """Each strongly connected component of more than one module, with one circle through
    it (the edges, to say where each import is)."""
    succ = {m: sorted({e.target for e in es}) for m, es in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[frozenset[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in succ[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(frozenset(comp))

    for v in sorted(succ):
        if v not in index:
            strongconnect(v)
    return [(c, _circle(graph, c)) for c in comps]


def _circle(graph: dict[str, list[Edge]], comp: frozenset[str]) -> list[Edge]:
    """A shortest circle from the component's first module back to it (breadth first)."""
    start = min(comp)
    prev: dict[str, Edge] = {}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for e in graph[v]:
            if e.target not in comp:
                continue
            if e.target == start:
                path = [e]
                while path[0].source != start:
                    path.insert(0, prev[path[0].source])
                return path
            if e.target not in prev:
                prev[e.target] = e
                queue.append(e.target)
    raise AssertionError(f"no circle in {sorted(comp)}")


def describe(circle: list[Edge]) -> str:
    return " -> ".join(f"{e.source} (line {e.line}, {e.where})" for e in circle) + \
        f" -> {circle[0].source}"


def _write(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return {module_name(p, root): p for p in root.rglob("*.py")}


# ------------------------------------------------------------------ the graph reader
def test_import_edges_when_relative_function_and_type_checking_imports_then_all_found(
        tmp_path):
    modules = _write(tmp_path, {
        "research_lib/__init__.py": "", "research_lib/models/__init__.py": "",
        "research_lib/models/card.py": "", "research_lib/models/onnx.py": "",
        "research_lib/errors.py": "",
    })
    src = ("from typing import TYPE_CHECKING\nfrom ..errors import X\n"
           "if TYPE_CHECKING:\n    from .onnx import Y\n"
           "def f():\n    from . import card\n")
    edges = import_edges(src, "research_lib.models.train", False, modules)
    assert {(e.target, e.where) for e in edges} == {
        ("research_lib.errors", "module"), ("research_lib.models.onnx", "TYPE_CHECKING"),
        ("research_lib.models.card", "function")}


def test_cycles_when_a_function_level_import_closes_a_circle_then_reported_with_lines():
    graph = {
        "a": [Edge("a", "b", 3, "module")],
        "b": [Edge("b", "c", 5, "module")],
        "c": [Edge("c", "a", 9, "function")],
        "d": [Edge("d", "a", 1, "module")],
    }
    (comp, circle), = cycles(graph)
    assert comp == {"a", "b", "c"}
    assert describe(circle) == "a (line 3, module) -> b (line 5, module) -> c (line 9, function) -> a"


# ------------------------------------------------------------------ the package
def test_import_graph_when_read_then_no_circle_but_the_listed_ones():
    found = cycles(import_graph())
    new = [describe(circle) for comp, circle in found if comp not in ALLOWED_CYCLES]
    assert new == [], "import circles:\n" + "\n".join(new)
    gone = [sorted(c) for c in ALLOWED_CYCLES - {comp for comp, _ in found}]
    assert gone == [], f"listed circles no longer found, remove them from ALLOWED_CYCLES: {gone}"


def test_models_onnx_when_read_then_imports_neither_card_nor_train():
    targets = {e.target for e in import_graph()["research_lib.models.onnx"]}
    assert not targets & {"research_lib.models.card", "research_lib.models.train",
                          "research_lib.models.parity", "research_lib.models.legacy"}


def test_modules_outside_cli_when_read_then_neither_argparse_nor_print():
    hits = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("research_lib/cli/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), rel)):
            if isinstance(node, ast.Import) and any(
                    a.name.split(".")[0] == "argparse" for a in node.names):
                hits.append(f"{rel}:{node.lineno}: import argparse")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "argparse":
                hits.append(f"{rel}:{node.lineno}: from argparse import")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id == "print"):
                hits.append(f"{rel}:{node.lineno}: print()")
    assert hits == [], "only research_lib/cli/ parses arguments or prints:\n" + "\n".join(hits)


def test_files_when_counted_then_none_over_max_lines_but_the_listed_ones():
    lines = {p.relative_to(ROOT).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
             for p in sorted(PACKAGE.rglob("*.py"))}
    over = {rel: n for rel, n in lines.items() if n > MAX_LINES}
    new = {rel: n for rel, n in over.items() if rel not in ALLOWED_LONG}
    assert new == {}, f"files over {MAX_LINES} lines (split them): {new}"
    fixed = sorted(ALLOWED_LONG - set(over))
    assert fixed == [], f"no longer over {MAX_LINES} lines, remove from ALLOWED_LONG: {fixed}"


HEAVY = ("sklearn", "skl2onnx", "matplotlib", "papermill")


def test_cli_paper_and_reset_halt_when_run_then_no_training_or_plotting_library_imported(
        tmp_path):
    cfg = write_config(tmp_path / "config", session={"kill_file": str(tmp_path / "kill.flag")})
    runs = str(tmp_path / "runs")
    code = (
        "import json, sys\n"
        "from research_lib.cli import main\n"
        "argv = json.loads(sys.argv[1])\n"
        "codes = [main(argv[0]), main(argv[1])]\n"
        f"print(json.dumps([codes, [m for m in {HEAVY!r} if m in sys.modules]]))\n"
    )
    argv = [["paper", "--symbols", "SPY,BTC-USD", "--start", "2018-10-01", "--end",
             "2018-10-31", "--config-dir", str(cfg), "--run-dir", runs, "--run-id", "imports"],
            ["reset-halt", "imports", "--run-dir", runs]]
    out = subprocess.run([sys.executable, "-c", code, json.dumps(argv)], capture_output=True,
                         text=True, check=True, cwd=tmp_path).stdout
    codes, heavy = json.loads(out.splitlines()[-1])
    assert codes == [0, 0] and heavy == []
    assert "imports: state is ACTIVE; nothing to reset" in out
