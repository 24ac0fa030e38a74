"""streams/ is in rooms, and imports between them run one way (see streams/__init__.py).

Every import is read, those inside functions too: a lazy import is allowed for start-up time, never to
dodge a circle, so it must follow the same direction.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STREAMS = ROOT / "streams"
FOUNDATION = "foundation"
ALLOWED = {  # room -> the rooms it may import (and itself)
    FOUNDATION: {FOUNDATION},
    "kafka": {FOUNDATION, "kafka"},
    "readmodel": {FOUNDATION, "readmodel"},
    "worker": {FOUNDATION, "kafka", "readmodel", "worker"},
    "actions": {FOUNDATION, "kafka", "readmodel", "actions"},
    "stack": {FOUNDATION, "stack"},
    "api": {FOUNDATION, "kafka", "readmodel", "api"},
    "cli": {FOUNDATION, "kafka", "readmodel", "worker", "actions", "stack", "api", "cli"},
}


def room_of(module: str) -> str:
    """``streams.kafka.topics`` -> kafka; ``streams.settings`` -> the foundation."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (STREAMS / parts[1]).is_dir()) else FOUNDATION


def module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, known: set[str]) -> list[tuple[str, int, bool]]:
    """(imported streams module, line, at module level) for every import of ``streams`` in ``source``;
    ``known``: every module's name, to tell ``from package import module`` from ``from module import name``."""
    tree = ast.parse(source)
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from streams.kafka import topics` imports the module streams.kafka.topics
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                     for alias in node.names]
        found += [(name, node.lineno, id(node) in top) for name in names if name.split(".")[0] == "streams"]
    return found


def modules() -> dict[str, str]:
    return {module_of(path): path.read_text(encoding="utf-8") for path in STREAMS.rglob("*.py")}


def violations(sources: dict[str, str]) -> list[str]:
    bad = []
    for module, source in sources.items():
        for imported, line, _ in imports_of(source, set(sources)):
            if room_of(imported) not in ALLOWED[room_of(module)]:
                bad.append(f"{module}:{line} ({room_of(module)}) imports {imported} ({room_of(imported)})")
    return bad


def cycles(sources: dict[str, str]) -> list[list[str]]:
    """Circles in the import graph of module-level and function-level imports alike."""
    graph = {m: {i for i, _, _ in imports_of(s, set(sources)) if i in sources and i != m} for m, s in sources.items()}
    found, done, path = [], set(), []

    def visit(node: str) -> None:
        if node in path:
            found.append([*path[path.index(node):], node])
            return
        if node in done:
            return
        path.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)
    return found


def test_every_module_lives_in_a_known_room():
    assert {room_of(m) for m in modules()} == set(ALLOWED)


def test_imports_between_rooms_run_one_way():
    assert violations(modules()) == []


def test_no_import_circle():
    assert cycles(modules()) == []


def test_every_package_says_what_lives_there_and_what_it_may_import():
    for init in STREAMS.rglob("__init__.py"):  # streams/__init__.py names every room's allowed imports
        doc = (ast.get_docstring(ast.parse(init.read_text())) or "").lower()
        assert "import" in doc, f"{init.relative_to(ROOT)} has no docstring naming what it may import"


@pytest.mark.parametrize(("module", "source", "expected"), [
    ("streams.worker.engine", "from streams.actions.actor import Actor", "worker"),
    ("streams.kafka.topics", "def f():\n    from streams.worker import engine", "kafka"),
    ("streams.settings", "import streams.kafka.topics", "foundation"),
    ("streams.actions.app", "from streams.cli import main", "actions"),
])
def test_the_direction_check_catches_a_wrong_import(module, source, expected):
    found = violations({"streams.worker.engine": "", "streams.kafka.topics": "", module: source})
    assert len(found) == 1
    assert f"({expected}) imports" in found[0]


def test_the_circle_check_catches_a_circle_through_a_lazy_import():
    sources = {"streams.cli.a": "from streams.cli import b", "streams.cli.b": "def f():\n    from streams.cli import a"}
    assert cycles(sources) == [["streams.cli.a", "streams.cli.b", "streams.cli.a"]]
