"""The map in ARCHITECTURE.md, checked: one-way dependencies between layers, no import cycle
(function-level imports included), rooms of the editor under 400 lines, and code and help that
point only at files in the repository."""
import ast
import re
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "nodes":  # installed as msgr_nodes.nodes
        parts = ["msgr_nodes"] + parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def package_files() -> dict[str, Path]:
    files = list((ROOT / "msgr_nodes").rglob("*.py")) + list((ROOT / "nodes").rglob("*.py"))
    return {module_name(p): p for p in files}


def imports_of(name: str, path: Path, modules) -> tuple[set[str], set[str]]:
    """(package modules, top-level third-party names) that a module imports anywhere in its code."""
    is_package = path.name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    inner, outer = set(), set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                mod = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # ``from . import x`` imports the submodule x when there is one, else a name of the package
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
        else:
            continue
        for t in targets:
            if t in modules:
                if t != name:
                    inner.add(t)
            elif not t.startswith("msgr_nodes"):
                outer.add(t.split(".")[0])
    return inner, outer


@pytest.fixture(scope="module")
def import_graph():
    modules = package_files()
    g = nx.DiGraph()
    third_party = {}
    for name, path in modules.items():
        inner, outer = imports_of(name, path, modules)
        g.add_node(name)
        g.add_edges_from((name, t) for t in inner)
        third_party[name] = outer
    return g, third_party


def test_the_import_graph_finds_a_cycle_when_there_is_one(tmp_path):
    """The checker itself: a function-level import that closes a loop is seen."""
    (tmp_path / "a.py").write_text("from . import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from .a import x\n")
    modules = {"p.a": tmp_path / "a.py", "p.b": tmp_path / "b.py"}
    g = nx.DiGraph((n, t) for n, p in modules.items() for t in imports_of(n, p, modules)[0])
    assert list(nx.simple_cycles(g)) in ([["p.a", "p.b"]], [["p.b", "p.a"]])


def test_no_import_cycle_among_the_package_modules(import_graph):
    g, _ = import_graph
    assert g.number_of_edges() > 100  # the graph was really built
    assert list(nx.simple_cycles(g)) == []


def layer(name: str) -> str:
    for sub in ("ops", "io", "nodes", "gui"):
        if name == f"msgr_nodes.{sub}" or name.startswith(f"msgr_nodes.{sub}."):
            return sub
    if name in ("msgr_nodes.errors", "msgr_nodes.version", "msgr_nodes.image"):
        return "base"
    return "core"


# who may import whom (besides itself); see ARCHITECTURE.md
ALLOWED = {
    "base": {"base"},
    "ops": {"ops", "msgr_nodes.errors"},
    "io": {"io", "base"},
    "core": {"core", "base", "io", "ops", "nodes"},   # the registry discovers the built-in nodes
    "nodes": {"msgr_nodes.api", "ops", "io", "msgr_nodes.provenance"},
    "gui": {"gui", "core", "base", "io", "ops"},
}


def _allowed(src: str, dst: str) -> bool:
    rules = ALLOWED[layer(src)]
    return dst in rules or layer(dst) in rules


def test_dependencies_run_one_way(import_graph):
    g, third_party = import_graph
    wrong = [f"{a} -> {b}" for a, b in g.edges if not _allowed(a, b)
             and not (a == "msgr_nodes.cli" and b == "msgr_nodes.gui.app")]  # `msgr-nodes gui` opens it
    assert wrong == []
    gui_outside = [n for n, names in third_party.items() if "dearpygui" in names and layer(n) != "gui"]
    assert gui_outside == []
    assert _allowed("msgr_nodes.ops.gradient", "msgr_nodes.ops.abe")
    assert not _allowed("msgr_nodes.ops.gradient", "msgr_nodes.graph")  # the rule can fail
    assert not _allowed("msgr_nodes.nodes.save", "msgr_nodes.executor")
    assert layer("msgr_nodes.nodespec") == "core" and layer("msgr_nodes.nodes.save") == "nodes"


def test_every_file_of_the_editor_is_under_400_lines():
    sizes = {p.name: len(p.read_text("utf-8").splitlines()) for p in (ROOT / "msgr_nodes" / "gui").glob("*.py")}
    assert len(sizes) >= 5
    assert {k: v for k, v in sizes.items() if v > 400} == {}


def test_every_room_of_the_editor_says_which_thread_calls_it():
    for p in (ROOT / "msgr_nodes" / "gui").glob("*.py"):
        doc = ast.get_docstring(ast.parse(p.read_text("utf-8"))) or ""
        assert re.search(r"\bthread", doc), f"{p.name}: the module docstring must say which thread calls it"


def test_code_and_help_point_only_at_files_in_the_repository():
    found = []
    for folder in ("msgr_nodes", "nodes", "graphs"):
        for p in (ROOT / folder).rglob("*"):
            if p.suffix in (".py", ".json") and p.is_file():
                for i, line in enumerate(p.read_text("utf-8").splitlines(), 1):
                    if re.search(r"\bspec/|\.\./shared|ALGORITHMS\.md|PERFORMANCE\.md|\(spec: [a-z]", line):
                        found.append(f"{p.relative_to(ROOT)}:{i}: {line.strip()}")
    assert found == []


def test_public_ops_with_many_arguments_document_them():
    missing = []
    for p in (ROOT / "msgr_nodes" / "ops").rglob("*.py"):
        tree = ast.parse(p.read_text("utf-8"))
        top_level = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                args = [a.arg for a in node.args.args + node.args.kwonlyargs if a.arg not in ("self", "cls")]
                doc = ast.get_docstring(node) or ""
                if not doc and id(node) in top_level:
                    missing.append(f"{p.name}:{node.name}: no docstring")
                elif len(args) >= 6 and "Parameters\n" not in doc:
                    missing.append(f"{p.name}:{node.name}: {len(args)} arguments, no Parameters section")
    assert missing == []


def _ignored(folder: Path) -> bool:
    """Whether git ignores a folder of the checkout (a benchmark's output, a build); False outside git."""
    import subprocess

    try:
        return subprocess.run(["git", "check-ignore", "-q", f"{folder.name}/"], cwd=ROOT,
                              capture_output=True).returncode == 0
    except OSError:
        return False


def test_architecture_md_names_every_top_level_folder():
    text = (ROOT / "ARCHITECTURE.md").read_text("utf-8")
    tracked = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")
               and p.name != "build" and not p.name.endswith(".egg-info") and not _ignored(p)}
    assert {"msgr_nodes", "nodes", "graphs", "assets", "tests", "benchmarks", "docs"} <= tracked
    assert sorted(f for f in tracked if f"`{f}/`" not in text) == []
