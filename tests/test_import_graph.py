"""The library's shape: esci_tf imports nothing above itself (trainers, tfrecords, bench, tests),
and its modules import each other without a cycle; read from the source of every module, imports
inside functions included (a lazy import counts). `from package import name` counts as an import
of package.name where that is a module, else of the package (its __init__)."""

import ast
import pathlib
import sys

LIBRARY = pathlib.Path(__file__).resolve().parents[1] / "esci_tf"
ABOVE = ("trainers", "tfrecords", "bench", "tests")


def imports_of(source: str, package: tuple, with_names: bool = False) -> list:
    """(line, module name) of every import statement in `source`, a module of `package` (its
    dotted parts); relative imports are resolved against it. with_names: one row per name of a
    `from X import a, b` (X.a, X.b), so a submodule imported from its package is seen."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parts = list(package[: len(package) - node.level + 1]) if node.level else []
            base = ".".join(parts + ([node.module] if node.module else []))
            if with_names:
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, base))
    return found


def library_imports(with_names: bool = False) -> list:
    """(file relative to the repository, line, module name) of every import in esci_tf."""
    rows = []
    for path in sorted(LIBRARY.rglob("*.py")):
        parts = path.relative_to(LIBRARY.parent).with_suffix("").parts
        rows += [(path.relative_to(LIBRARY.parent), line, name)
                 for line, name in imports_of(path.read_text(), parts[:-1], with_names)]  # parts[:-1]: its package
    return rows


def library_imports_with_names() -> list:
    return library_imports(with_names=True)


def test_the_library_imports_nothing_above_itself():
    rows = library_imports()
    assert len(rows) > 500  # the walk saw the library
    offending = [f"{path}:{line} imports {name}" for path, line, name in rows if name.split(".")[0] in ABOVE]
    assert not offending, "\n".join(offending)


def module_graph(rows) -> dict:
    """{module: set of the esci_tf modules it imports}, from library_imports()-like rows of
    (file, line, name) where name may also be "package.name" of a `from package import name`."""
    modules = {".".join(path.with_suffix("").parts[:-1] if path.name == "__init__.py"
                        else path.with_suffix("").parts) for path, _, _ in rows}
    graph = {module: set() for module in modules}
    for path, _, name in rows:
        source = ".".join(path.with_suffix("").parts[:-1] if path.name == "__init__.py" else path.with_suffix("").parts)
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != source:
            graph[source].add(name)
    return graph


def find_cycle(graph: dict) -> list:
    """One cycle of the graph as [a, b, ..., a], or [] when it has none (depth-first search)."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_the_library_has_no_import_cycle():
    rows = [(path, line, name) for path, line, name in library_imports_with_names()]
    graph = module_graph(rows)
    assert "esci_tf.rankers.registry" in graph["esci_tf.rankers.ensemble"]  # the walk resolves modules
    cycle = find_cycle(graph)
    assert not cycle, " -> ".join(cycle)


def test_the_cycle_search_finds_a_lazy_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_the_walk_sees_lazy_and_relative_imports():
    source = "import os\n\ndef later():\n    from tfrecords import build\n    from .reader import load_esci\n"
    assert imports_of(source, ("esci_tf", "data")) == [(1, "os"), (4, "tfrecords"), (5, "esci_tf.data.reader")]
