"""The core stays pure: no I/O clients, no asyncio, no environment, no wall clock."""

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "segmenter"
FORBIDDEN_MODULES = {"faust", "aiokafka", "kafka", "redis", "asyncio", "streams", "socket", "os",
                     "subprocess", "mode", "rocksdict", "time"}
FORBIDDEN_CALLS = {"now", "utcnow", "today", "getenv", "time"}


def _imports(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_core_modules_import_no_io_or_runtime():
    offenders = {}
    for path in CORE.rglob("*.py"):
        bad = _imports(ast.parse(path.read_text())) & FORBIDDEN_MODULES
        if bad:
            offenders[str(path.relative_to(CORE))] = sorted(bad)
    assert offenders == {}


def test_core_never_reads_the_clock_or_environment():
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_CALLS | {"environ"}:
                offenders.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert offenders == []


def test_the_purity_check_would_catch_an_asyncio_import():
    assert _imports(ast.parse("import asyncio\nfrom redis import Redis")) & FORBIDDEN_MODULES == {
        "asyncio", "redis"}
