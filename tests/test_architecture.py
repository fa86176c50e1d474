"""The shape of the source tree: no import circle (lazy imports included), short modules."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "dlrn"
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    modules = {}
    for path in (SOURCE / PACKAGE).rglob("*.py"):
        parts = list(path.relative_to(SOURCE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node that can run: ``if TYPE_CHECKING:`` blocks are for type checkers only."""
    nodes, stack = [], [tree]
    while stack:
        node = stack.pop()
        nodes.append(node)
        if _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return nodes


def _imports(name: str, path: Path, known: set[str], type_only: bool = False) -> set[str]:
    """Every dlrn module ``path`` imports when it runs, at the top or inside functions;
    with ``type_only`` also those under ``if TYPE_CHECKING:``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text())
    for node in (ast.walk(tree) if type_only else _runtime_nodes(tree)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    return {module for module in found if module in known and module != name}


def import_graph(type_only: bool = False) -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known, type_only) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_type_checking_imports_are_not_runtime_edges():
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\n"
                     "else:\n    import b\ndef f():\n    import c\n")
    imported = {alias.name for node in _runtime_nodes(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    assert imported == {"b", "c"}


def test_no_import_circle_in_src():
    graph = import_graph()
    assert "dlrn.study.runner" in graph["dlrn.study.pipeline"]  # the graph sees imports
    assert find_cycle(graph) is None


def test_no_module_is_longer_than_the_limit():
    long = {name for name, path in _modules().items()
            if len(path.read_text().splitlines()) > MAX_LINES}
    assert not long, f"modules above {MAX_LINES} lines: {sorted(long)}"


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_bundle_and_predict_import_no_orchestrator_code():
    graph = import_graph()
    for module in ("dlrn.study.predict", "dlrn.study.bundle"):
        reached = _reachable(graph, module)
        assert "dlrn.deep.classifier.features" in reached or module.endswith("bundle")
        orchestration = {m for m in reached if m.startswith(("dlrn.study.stages",
                                                             "dlrn.study.pipeline",
                                                             "dlrn.study.runner"))}
        assert not orchestration, f"{module} imports {sorted(orchestration)}"


# dlrn.deep's layers, bottom first: a module imports dlrn.deep modules of its own layer
# or below only (docs/ARCHITECTURE.md, "The deep package")
DEEP_LAYERS = (
    ("dlrn.deep", "dlrn.deep.settings", "dlrn.deep.memory"),
    ("dlrn.deep.runtime",),
    ("dlrn.deep.data", "dlrn.deep.networks"),
    ("dlrn.deep.inference", "dlrn.deep.engine"),
    ("dlrn.deep.classifier",),  # and every module in it
)


def _deep_layer(module: str) -> int:
    for rank, layer in enumerate(DEEP_LAYERS):
        if module in layer or (rank == len(DEEP_LAYERS) - 1
                               and module.startswith("dlrn.deep.classifier.")):
            return rank
    raise AssertionError(f"{module} is in no layer of DEEP_LAYERS: place it there")


def _deep_graph() -> dict[str, set[str]]:
    """dlrn.deep's own imports, type-only (``if TYPE_CHECKING:``) and lazy ones included."""
    return {name: {target for target in targets if target.startswith("dlrn.deep")}
            for name, targets in import_graph(type_only=True).items()
            if name.startswith("dlrn.deep")}


def test_no_import_circle_in_deep_type_only_imports_included():
    graph = _deep_graph()
    assert "dlrn.deep.classifier.crossfit" in graph["dlrn.deep.classifier.diagnostics"]  # type-only
    assert "dlrn.deep.classifier.lockstep" in graph["dlrn.deep.classifier.crossfit"]  # lazy
    assert find_cycle(graph) is None


def test_deep_layers_import_only_their_own_layer_or_below():
    graph = _deep_graph()
    upward = {f"{name} -> {target}" for name, targets in graph.items() for target in targets
              if _deep_layer(target) > _deep_layer(name)}
    assert not upward, f"imports from a higher layer of dlrn.deep: {sorted(upward)}"
    for name, targets in graph.items():
        if _deep_layer(name) < _deep_layer("dlrn.deep.classifier"):
            assert not {t for t in targets if t.startswith("dlrn.deep.classifier")}, name


def test_the_engine_knows_no_data_network_or_classifier():
    assert _deep_graph()["dlrn.deep.engine"] <= {"dlrn.deep.settings", "dlrn.deep.runtime",
                                                 "dlrn.deep.memory"}
