"""The import graph of FineForge's own code: no cycles, and imports point down the layers.

docs/architecture.md ("Packages and who owns what") states the rule this file checks: `model` imports nothing of
ours; `pipelines` imports `model`; `trainer` imports `model`, `pipelines.common` and `pipelines.shards`;
`orchestration` imports everything below it; `flows.py` and `cli.py` sit on top. The one exception is
`pipelines.ablate`, which imports `trainer`. Every `import` statement counts, including those inside functions: a
lazy import keeps a module light to load, but the dependency is the same.

The graph is read with `ast` from the source files, so the check costs no imports and sees every statement.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("model", "pipelines", "trainer", "orchestration")
TOP_MODULES = ("cli", "flows")

# Layers, lowest first (docs/architecture.md's list); a module may import its own layer or one below it.
LAYERS = {"model": 0, "pipelines": 1, "trainer": 2, "orchestration": 3, "flows": 4, "cli": 5}
# What `trainer` may take from `pipelines` ("`trainer` imports `model`, `pipelines.common` and `pipelines.shards`").
TRAINER_MAY_IMPORT = ("pipelines.common", "pipelines.shards")
# The stated exception: `pipelines.ablate` composes curate, tokenize and training runs, so it imports `trainer`;
# in return only `cli.py` and `flows.py` import it.
ABLATE = "pipelines.ablate"
ABLATE_IMPORTERS = ("cli", "flows", ABLATE)


def module_name(path: Path) -> str:
    """The dotted module name of a source file under ROOT."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> list[Path]:
    """Every Python file of the project's own modules (not tests or benchmarks)."""
    files = [ROOT / f"{name}.py" for name in TOP_MODULES]
    for package in PACKAGES:
        files += sorted((ROOT / package).rglob("*.py"))
    return files


def resolve(name: str, known: set[str]) -> str | None:
    """The longest known module that `name` (a module or `module.attribute`) names, or None if not ours."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, at any depth of the file (functions included).

    `from a.b import c` is an edge to `a.b.c` when that is a module, else to `a.b` (its `__init__`). The parent
    packages' `__init__` files that Python also runs are not edges: a package that re-exports its modules would
    otherwise import itself from every module inside it.
    """
    files = {module_name(path): path for path in source_files()}
    known = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                names = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for imported in names:
                target = resolve(imported, known)
                if target is not None and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def package_of(module: str) -> str:
    """The unit a package-level cycle is counted in: `pipelines.curate`, `trainer`, `cli`..."""
    parts = module.split(".")
    if parts[0] == "pipelines" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every node `start` leads to through one or more edges."""
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of nodes that reach each other (the strongly connected components with a cycle), sorted."""
    reach = {node: reachable(graph, node) for node in graph}
    groups = {tuple(sorted(n for n in reach[node] if node in reach[n])) for node in graph if node in reach[node]}
    return sorted(list(group) for group in groups)


def collapse(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph between packages (`package_of`), without edges inside one package."""
    packages: dict[str, set[str]] = {}
    for source, targets in graph.items():
        edges = packages.setdefault(package_of(source), set())
        edges.update(package_of(t) for t in targets if package_of(t) != package_of(source))
    return packages


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that breaks the layer rule of docs/architecture.md, as `source -> target`."""
    problems = []
    for source, target in ((s, t) for s, targets in sorted(graph.items()) for t in sorted(targets)):
        source_layer, target_layer = source.split(".")[0], target.split(".")[0]
        if target.startswith(ABLATE):
            allowed = source.startswith(ABLATE_IMPORTERS)
        elif source.startswith(ABLATE) and target_layer == "trainer":
            allowed = True
        elif source_layer == "trainer" and target_layer == "pipelines":
            allowed = target.startswith(TRAINER_MAY_IMPORT)
        else:
            allowed = LAYERS[target_layer] <= LAYERS[source_layer]
        if not allowed:
            problems.append(f"{source} -> {target}")
    return problems


def test_graph_sees_lazy_and_module_imports() -> None:
    """The reader finds both kinds of import (a check of the check): module level, and inside a function."""
    graph = import_graph()
    assert "pipelines.common.files" in graph["pipelines.curate.config"]  # module level
    assert "pipelines.curate" in graph["cli"]  # cli imports its commands' stages inside functions
    assert {"model", "pipelines.curate", "pipelines.quality", "trainer", "orchestration"} <= set(collapse(graph))


def test_no_module_cycle() -> None:
    """No module imports itself through others."""
    assert cycles(import_graph()) == []


def test_no_package_cycle() -> None:
    """No package (`pipelines.curate`, `pipelines.quality`, `trainer`, ...) imports itself through others."""
    assert cycles(collapse(import_graph())) == []


def test_imports_point_down() -> None:
    """model < pipelines < trainer < orchestration < flows < cli; only `pipelines.ablate` imports `trainer`."""
    assert layer_violations(import_graph()) == []


def test_cycles_finds_loops() -> None:
    """The cycle finder finds a three-node loop and a pair, and passes a chain (a check of the check)."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d", "f"}, "f": set()}
    assert cycles(graph) == [["a", "b", "c"], ["d", "e"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
