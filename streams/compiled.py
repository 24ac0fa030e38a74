"""The worker's hot path compiled with mypyc from this same source: optional, and used only while it matches it.

Two ways to have it, one list of modules (``MODULES``: the core's per-event arithmetic, the quick event reader,
the edge, the change documents, the stored record):

- **A built wheel** (``make wheel``, the Docker image, ``pip install .`` where mypy is at hand: ``setup.py``)
  carries each module's extension beside its ``.py``; Python's import prefers the extension, and nothing is
  checked at import.
- **A checkout** (``make install``'s editable install): ``make compiled`` runs ``build()``, which compiles the
  modules into ``var/compiled/<python>/`` beside the source tree, leaving the source untouched. ``install()`` (run
  by ``streams/__init__.py``) puts a finder ahead of the source for exactly those modules while the build matches
  the source: the size and modification time of every module under ``segmenter/``, ``schemas/`` and ``streams/``
  (a stat each, no reading), and the Python. A changed file makes ``make compiled`` compare contents: the same
  source only renews the stamp, another one is compiled again.

Without mypy or a C compiler, or with ``SEGMENTER_COMPILED=0`` (which, in a wheel, serves the ``.py`` beside each
extension), the interpreted modules run: they are the reference, and ``make test`` runs the unit tests on them too.
Only the standard library is imported here: ``setup.py`` reads ``MODULES`` from this file before any dependency is
installed.
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
    "segmenter/state.py", "segmenter/policy.py", "segmenter/extras.py", "segmenter/step.py", "segmenter/record.py",
    "segmenter/classify.py", "segmenter/codec.py", "segmenter/encoder.py", "segmenter/frozen.py",
    "segmenter/metrics.py", "segmenter/facts.py", "segmenter/timebase.py", "segmenter/rules/compiler.py",
    "segmenter/rules/conditions.py",
    "schemas/quick.py", "streams/worker/edge.py", "streams/worker/documents.py", "streams/stored.py",
    "streams/worker/records.py", "streams/worker/partition.py", "streams/readmodel/rows.py",
)
PACKAGES = ("segmenter", "schemas", "streams")
TARGET = ROOT / "var" / "compiled" / f"{sys.implementation.cache_tag}-{platform.machine()}"
FINGERPRINT = "SOURCE"  # the contents' digest the build was made from
STAMP = "STAMP"  # the files' sizes and times the build was last found current for
OFF = "SEGMENTER_COMPILED"  # "0": the interpreted modules, whatever is built


class _Finder(MetaPathFinder):
    """Serves the file in ``files`` (module name -> path) for each module named there, and nothing else."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(self, name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        file = self.files.get(name)
        return None if file is None else importlib.util.spec_from_file_location(name, file)


_state: dict[str, str] = {}


def _sources() -> list[Path]:
    return [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]


def fingerprint() -> str:
    """What a build is valid for: every source module of the three packages and the Python it was built for (not
    the mypy that built it, which a runtime without dev dependencies lacks: the extensions carry mypyc's runtime)."""
    digest = hashlib.sha256(f"{sys.version}\n".encode())
    for path in _sources():
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def stamp() -> str:
    """The cheap check made at import: each source module's path, size and modification time, and the Python."""
    lines = [sys.version]
    for path in _sources():
        found = path.stat()
        lines.append(f"{path.relative_to(ROOT)} {found.st_size} {found.st_mtime_ns}")
    return "\n".join(lines) + "\n"


def _read(name: str) -> str | None:
    try:
        return (TARGET / name).read_text()
    except OSError:
        return None


def _extensions(directory: Path) -> dict[str, Path]:
    """Module name -> compiled file under ``directory`` (the modules and mypyc's shared runtime)."""
    found: dict[str, Path] = {}
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        for path in directory.rglob(f"*{suffix}"):
            parts = path.relative_to(directory).parts
            found[".".join((*parts[:-1], parts[-1].removesuffix(suffix)))] = path
    return found


def _in_package() -> dict[str, Path]:
    """Module name -> its extension inside the installed package (a built wheel), for every module that has one."""
    found: dict[str, Path] = {}
    for module in MODULES:
        source = ROOT / module
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            extension = source.with_name(source.stem + suffix)
            if extension.is_file():
                found[_name(module)] = extension
                break
    return found


def install() -> str:
    """Use the compiled modules when there are current ones and ``SEGMENTER_COMPILED`` is not 0. Returns what
    runs, as a sentence for logs (once decided, the same answer)."""
    if "status" in _state:
        return _state["status"]
    off = os.environ.get(OFF, "1") == "0"
    loaded = [name for name in _module_names() if name in sys.modules]
    packaged = _in_package()
    if packaged and off and loaded:
        status = f"compiled with mypyc ({', '.join(loaded)} imported before {OFF}=0 could be honoured)"
    elif packaged and off:
        sys.meta_path.insert(0, _Finder({_name(module): ROOT / module for module in MODULES}))
        status = f"interpreted ({OFF}=0; the wheel's compiled modules are not used)"
    elif packaged:
        missing = [name for name in _module_names() if name not in packaged]
        status = (f"compiled with mypyc ({len(packaged)} modules in the installed package)" if not missing
                  else f"partly compiled (the installed package lacks {', '.join(missing)})")
    elif off:
        status = f"interpreted ({OFF}=0)"
    elif (built := _read(STAMP)) is None:
        status = "interpreted (no compiled build: `make install` makes one where mypy and a C compiler are)"
    elif built != stamp():
        status = "interpreted (the source changed since the compiled build: run `make install`)"
    else:
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


def _name(module: str) -> str:
    return module.removesuffix(".py").replace("/", ".")


def _module_names() -> list[str]:
    return [_name(m) for m in MODULES]


def active() -> bool:
    """The hot path's modules this process imported are the compiled ones (and it imported some)."""
    files = [getattr(sys.modules[name], "__file__", None) or "" for name in _module_names() if name in sys.modules]
    return bool(files) and not any(file.endswith(".py") for file in files)


def build() -> int:
    """Compile ``MODULES`` into ``TARGET`` (unless a current build is there) through ``setup.py build_ext``; 0 when
    there is one after."""
    now = stamp()
    if _read(STAMP) == now:
        print(f"compiled hot path: current ({TARGET.relative_to(ROOT)})")
        return 0
    wanted = fingerprint()
    if (_read(FINGERPRINT) or "").strip() == wanted and _extensions(TARGET):
        (TARGET / STAMP).write_text(now)
        print(f"compiled hot path: current ({TARGET.relative_to(ROOT)}; the files were touched, not changed)")
        return 0
    if importlib.util.find_spec("mypyc") is None:
        print("compiled hot path: not built (mypy, which ships mypyc, is not installed); the interpreted modules run")
        return 1
    print(f"compiled hot path: compiling {len(MODULES)} modules with mypyc (about a minute) ...", flush=True)
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=TARGET.parent) as scratch:
        work = Path(scratch)
        done = subprocess.run(  # noqa: S603 - our interpreter, our setup.py, our paths
            [sys.executable, "setup.py", "--quiet", "build_ext", "--build-lib", str(work / "lib"),
             "--build-temp", str(work / "tmp")],
            cwd=ROOT, capture_output=True, text=True, check=False, env={**os.environ, OFF: "1"})
        built = _extensions(work / "lib") if (work / "lib").is_dir() else {}
        missing = [name for name in _module_names() if name not in built]
        if done.returncode != 0 or missing:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            print("compiled hot path: not built (mypyc or the C compiler failed); the interpreted modules run:\n  "
                  + "\n  ".join(tail))
            return 1
        (work / "lib" / FINGERPRINT).write_text(wanted + "\n")
        (work / "lib" / STAMP).write_text(now)
        shutil.rmtree(TARGET, ignore_errors=True)
        (work / "lib").rename(TARGET)
    print(f"compiled hot path: built into {TARGET.relative_to(ROOT)}")
    return 0
