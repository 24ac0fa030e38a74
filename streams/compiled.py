"""The worker's hot path compiled with mypyc from this same source: optional, and used only while it matches it.

``make install`` (``make compiled``) runs ``build()``, which compiles ``MODULES`` (the core's per-event
arithmetic, the quick event reader, the edge, the change documents, the stored record) into
``var/compiled/<python>/`` beside the source tree, leaving the source untouched. It needs mypy (a dev
dependency, which ships mypyc) and the machine's C compiler; without them it says so and the interpreted modules
run, as they do everywhere else. ``install()`` (run by ``streams/__init__.py`` and the test suite's conftest) puts a
finder ahead of the source for exactly those modules, unless ``SEGMENTER_COMPILED=0`` or the source changed since
the build (a fingerprint of every module under ``segmenter/``, ``schemas/`` and ``streams/``, and the Python).
The interpreted modules are the reference: ``make test`` runs the unit tests with them too. The Docker image
compiles them in a build stage (``docker/Dockerfile``).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
MODULES = (
    "segmenter/state.py", "segmenter/step.py", "segmenter/classify.py", "segmenter/codec.py",
    "segmenter/metrics.py", "segmenter/facts.py", "segmenter/timebase.py", "segmenter/rules/compiler.py",
    "schemas/quick.py", "streams/worker/edge.py", "streams/worker/documents.py", "streams/stored.py",
)
PACKAGES = ("segmenter", "schemas", "streams")
TARGET = ROOT / "var" / "compiled" / f"{sys.implementation.cache_tag}-{platform.machine()}"
FINGERPRINT = "SOURCE"
OFF = "SEGMENTER_COMPILED"  # "0": the interpreted modules, whatever is built


class _Finder(MetaPathFinder):
    """Serves the compiled extension of each module in ``files`` (module name -> path) and nothing else."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(self, name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        file = self.files.get(name)
        return None if file is None else importlib.util.spec_from_file_location(name, file)


_state: dict[str, str] = {}


def fingerprint() -> str:
    """What a build is valid for: every source module of the three packages and the Python it was built for (not
    the mypy that built it, which a runtime without dev dependencies lacks: the extensions carry mypyc's runtime)."""
    digest = hashlib.sha256(f"{sys.version}\n".encode())
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _extensions(directory: Path) -> dict[str, Path]:
    """Module name -> compiled file under ``directory`` (the modules and mypyc's shared runtime)."""
    found: dict[str, Path] = {}
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        for path in directory.rglob(f"*{suffix}"):
            parts = path.relative_to(directory).parts
            found[".".join((*parts[:-1], parts[-1].removesuffix(suffix)))] = path
    return found


def install() -> str:
    """Use the compiled modules when a current build exists and ``SEGMENTER_COMPILED`` is not 0. Returns what
    runs, as a sentence for logs (once decided, the same answer)."""
    if "status" in _state:
        return _state["status"]
    if os.environ.get(OFF, "1") == "0":
        status = f"interpreted ({OFF}=0)"
    elif not (TARGET / FINGERPRINT).is_file():
        status = "interpreted (no compiled build: `make install` makes one where mypy and a C compiler are)"
    elif (TARGET / FINGERPRINT).read_text().strip() != fingerprint():
        status = "interpreted (the compiled build is older than the source: run `make install`)"
    else:
        loaded = [name for name in _module_names() if name in sys.modules]
        files = _extensions(TARGET)
        missing = [name for name in _module_names() if name not in files]
        if loaded or missing:
            status = (f"interpreted ({', '.join(loaded)} imported before the compiled modules could be used)" if loaded
                      else f"interpreted (the compiled build lacks {', '.join(missing)})")
        else:
            sys.meta_path.insert(0, _Finder(files))
            status = f"compiled with mypyc ({len(MODULES)} modules from {TARGET.relative_to(ROOT)})"
    _state["status"] = status
    return status


def _module_names() -> list[str]:
    return [m.removesuffix(".py").replace("/", ".") for m in MODULES]


def active() -> bool:
    """The hot path's modules this process imported are the compiled ones (and it imported some)."""
    files = [getattr(sys.modules[name], "__file__", None) or "" for name in _module_names() if name in sys.modules]
    return bool(files) and not any(file.endswith(".py") for file in files)


_SETUP = """
import sys
from mypyc.build import mypycify
from setuptools import setup
modules, c_dir, lib_dir, temp_dir = sys.argv[1].split(","), sys.argv[2], sys.argv[3], sys.argv[4]
setup(name="segmenter-hot-path", ext_modules=mypycify(modules, opt_level="3", target_dir=c_dir),
      script_args=["--quiet", "build_ext", "--build-lib", lib_dir, "--build-temp", temp_dir])
"""


def build() -> int:
    """Compile ``MODULES`` into ``TARGET`` (unless a current build is there); 0 when there is one after."""
    wanted = fingerprint()
    if (TARGET / FINGERPRINT).is_file() and (TARGET / FINGERPRINT).read_text().strip() == wanted:
        print(f"compiled hot path: current ({TARGET.relative_to(ROOT)})")
        return 0
    if importlib.util.find_spec("mypyc") is None:
        print("compiled hot path: not built (mypy, which ships mypyc, is not installed); the interpreted modules run")
        return 1
    print(f"compiled hot path: compiling {len(MODULES)} modules with mypyc (about a minute) ...", flush=True)
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=TARGET.parent) as scratch:
        work = Path(scratch)
        done = subprocess.run(  # noqa: S603 - our interpreter, our script, our paths
            [sys.executable, "-c", _SETUP, ",".join(MODULES), str(work / "c"), str(work / "lib"), str(work / "tmp")],
            cwd=ROOT, capture_output=True, text=True, check=False, env={**os.environ, OFF: "0"})
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            print("compiled hot path: not built (mypyc or the C compiler failed); the interpreted modules run:\n  "
                  + "\n  ".join(tail))
            return 1
        (work / "lib" / FINGERPRINT).write_text(wanted + "\n")
        shutil.rmtree(TARGET, ignore_errors=True)
        (work / "lib").rename(TARGET)
    print(f"compiled hot path: built into {TARGET.relative_to(ROOT)}")
    return 0
