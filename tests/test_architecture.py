"""The library's rooms and the direction of their arrows (docs/architecture.md), read from the source with ``ast``.

Every ``import`` counts, also those inside functions: a lazy import hides an arrow from the reader, not from this test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "orsalib"

#: room -> rank; a module may import its own room and rooms of a lower rank, never a higher one.
RANKS: dict[str, int] = {
    "orsalib": 0,  # the package __init__
    "paths": 0,
    "utils": 0,
    "registry": 0,
    "paper": 0,
    "threads": 0,
    "errors": 0,
    "models": 1,
    "losses": 1,
    "metrics": 1,
    "stats": 1,
    "config": 2,
    "data": 3,
    "priors": 4,
    "analysis": 5,
    "engine": 5,
    "experiments": 6,
    "viz": 7,
    "runbook": 8,
    "cli": 9,
    "__main__": 9,
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(module: str, is_pkg: bool, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        parts = module.split(".")
        keep = len(parts) - node.level + (1 if is_pkg else 0)
        base = ".".join(parts[:keep] + ([node.module] if node.module else []))
    if not base.startswith("orsalib"):
        return []
    # ``from . import x`` / ``from .pkg import sub`` may name submodules: record those that exist
    out = [base]
    for alias in node.names:
        cand = f"{base}.{alias.name}"
        if (PKG.parent / Path(*cand.split("."))).with_suffix(".py").is_file() or (
            PKG.parent / Path(*cand.split(".")) / "__init__.py"
        ).is_file():
            out.append(cand)
    return out


def import_graph() -> dict[str, dict[str, set[str]]]:
    """``{module: {"top": module-level imports, "all": every import}}`` over the orsalib package."""
    graph: dict[str, dict[str, set[str]]] = {}
    for path in sorted(PKG.rglob("*.py")):
        mod = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        top: set[str] = set()
        every: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("orsalib")]
            elif isinstance(node, ast.ImportFrom):
                names = _resolve(mod, path.name == "__init__.py", node)
            else:
                continue
            every.update(names)
            if node in tree.body or any(node in getattr(n, "body", []) for n in tree.body if isinstance(n, ast.If)):
                top.update(names)
        graph[mod] = {"top": top - {mod}, "all": every - {mod}}
    return graph


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
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

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


GRAPH = import_graph()


def test_every_room_has_a_rank():
    assert {room(m) for m in GRAPH} <= set(RANKS), sorted({room(m) for m in GRAPH} - set(RANKS))


def test_no_module_level_import_cycle():
    assert _cycles({m: g["top"] for m, g in GRAPH.items()}) == []


def test_no_upward_arrow():
    bad = []
    for mod, g in GRAPH.items():
        r = RANKS[room(mod)]
        for dep in g["all"]:
            if dep in GRAPH and RANKS[room(dep)] > r:
                bad.append(f"{mod} -> {dep}")
    assert bad == [], "imports against the direction of the arrows (docs/architecture.md):\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "low, forbidden",
    [
        ("models", {"config", "data", "priors", "engine", "analysis", "experiments", "viz", "runbook", "cli"}),
        ("data", {"models", "priors", "engine", "experiments", "viz", "runbook", "cli"}),
        ("priors", {"engine", "experiments", "viz", "runbook", "cli"}),
        ("engine", {"experiments", "viz", "runbook", "cli"}),
        ("analysis", {"experiments", "viz", "runbook", "cli"}),
    ],
)
def test_named_arrows_of_the_design(low, forbidden):
    bad = sorted(f"{m} -> {d}" for m, g in GRAPH.items() if room(m) == low for d in g["all"] if room(d) in forbidden)
    assert bad == []


def test_the_graph_is_read_correctly():
    # the reader itself: a known arrow is found, relative imports resolved
    assert "orsalib.engine.trainer" in GRAPH["orsalib.experiments.fer"]["top"]
    assert "orsalib.models._registry" in GRAPH["orsalib.models"]["top"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_import_names_an_existing_module():
    missing = sorted(f"{m} -> {d}" for m, g in GRAPH.items() for d in g["all"] if d not in GRAPH)
    assert missing == []


PLOTTING = ("plotly", "matplotlib", "seaborn", "bokeh", "altair", "kaleido")


def _third_party_imports(path: Path) -> set[str]:
    """The top-level names of every non-``orsalib`` module a file imports (also inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names - {"orsalib"}


@pytest.mark.parametrize("room_name", ["engine", "analysis"])
def test_figures_live_in_viz_alone(room_name):
    # engine/ and analysis/ return numbers, arrays and tables; the figures of them are drawn in viz/
    bad = sorted(f"{p.relative_to(PKG.parent)} imports {name}" for p in sorted((PKG / room_name).rglob("*.py"))
                 for name in _third_party_imports(p) if name in PLOTTING)  # fmt: skip
    assert bad == [], "plotting libraries are imported outside viz/ (docs/architecture.md):\n" + "\n".join(bad)


def test_the_plotting_check_sees_a_plotting_import(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    import plotly.graph_objects as go\n    from matplotlib import pyplot\n")
    assert {"plotly", "matplotlib"} <= _third_party_imports(f)


def _long_functions(room_name: str, limit: int) -> list[str]:
    out = []
    for path in sorted((PKG / room_name).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > limit:
                    out.append(f"{path.relative_to(PKG.parent)}:{node.lineno} {node.name} ({n} lines)")
    return out


@pytest.mark.parametrize("room_name", ["engine", "experiments"])
def test_functions_stay_short(room_name):
    # a function of the training engine or of an experiment reads top to bottom on one screen
    assert _long_functions(room_name, 80) == []
