"""The library's shape: esci_tf imports nothing above itself (trainers, tfrecords, bench, tests),
read from the source of every module, imports inside functions included (a lazy import counts)."""

import ast
import pathlib

LIBRARY = pathlib.Path(__file__).resolve().parents[1] / "esci_tf"
ABOVE = ("trainers", "tfrecords", "bench", "tests")


def imports_of(source: str, package: tuple) -> list:
    """(line, module name) of every import statement in `source`, a module of `package` (its
    dotted parts); relative imports are resolved against it."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parts = list(package[: len(package) - node.level + 1]) if node.level else []
            found.append((node.lineno, ".".join(parts + ([node.module] if node.module else []))))
    return found


def library_imports() -> list:
    """(file, line, module name) of every import in esci_tf."""
    rows = []
    for path in sorted(LIBRARY.rglob("*.py")):
        parts = path.relative_to(LIBRARY.parent).with_suffix("").parts
        rows += [(path.relative_to(LIBRARY.parent), line, name)
                 for line, name in imports_of(path.read_text(), parts[:-1])]  # parts[:-1]: its package
    return rows


def test_the_library_imports_nothing_above_itself():
    rows = library_imports()
    assert len(rows) > 500  # the walk saw the library
    offending = [f"{path}:{line} imports {name}" for path, line, name in rows if name.split(".")[0] in ABOVE]
    assert not offending, "\n".join(offending)


def test_the_walk_sees_lazy_and_relative_imports():
    source = "import os\n\ndef later():\n    from tfrecords import build\n    from .reader import load_esci\n"
    assert imports_of(source, ("esci_tf", "data")) == [(1, "os"), (4, "tfrecords"), (5, "esci_tf.data.reader")]
