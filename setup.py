"""A built wheel carries the hot path compiled with mypyc, from the same source as the interpreted modules.

Everything about the package is in ``pyproject.toml``; this file only adds the compiled modules
(``streams/compiled.py``'s ``MODULES``) when a wheel or a plain install is built: ``pip install .``,
``pip wheel .``, ``python -m build``. The wheel then holds each module twice, the extension beside its ``.py``, and
Python's import prefers the extension (``SEGMENTER_COMPILED=0`` turns that round at run time).

Never for an editable install (``make install``'s ``pip install -e``, whose compiled build lives in
``var/compiled/`` and is used only while it matches the source), nor with ``SEGMENTER_COMPILED=0`` at build time.
Where mypyc or the C compiler is missing or fails, the wheel is built without them and says so: the interpreted
modules then run, as they do everywhere else.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
BUILDS = {"bdist_wheel", "build", "build_ext", "install"}  # not egg_info, sdist, editable_wheel, develop


def _modules() -> tuple[str, ...]:
    """``MODULES`` read from ``streams/compiled.py`` without importing the package (which needs its dependencies)."""
    spec = importlib.util.spec_from_file_location("_segmenter_compiled", ROOT / "streams" / "compiled.py")
    if spec is None or spec.loader is None:
        raise RuntimeError("streams/compiled.py is missing")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.MODULES)


def _note(text: str) -> None:
    print(f"segmenter: {text}", file=sys.stderr, flush=True)


class _Optional(build_ext):
    """Builds the extensions, or none of them: a failed compiler leaves the interpreted wheel, with a note."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:  # any compiler failure leaves the interpreted modules
            _note(f"the hot path was not compiled ({type(error).__name__}: {error}); the interpreted modules run")
            self.extensions = []


def _extensions() -> list[object]:
    if not BUILDS & set(sys.argv) or os.environ.get("SEGMENTER_COMPILED", "1") == "0":
        return []
    try:
        from mypyc.build import mypycify  # noqa: PLC0415 - only where a wheel is built
    except ImportError:
        _note("mypyc (shipped with mypy) is not installed: the wheel carries the interpreted hot path only")
        return []
    modules = _modules()
    _note(f"compiling {len(modules)} hot-path modules with mypyc (about a minute)")
    try:
        return list(mypycify(list(modules), opt_level="3"))
    except BaseException as error:  # mypyc exits through SystemExit on a type error
        _note(f"mypyc refused the hot path ({error}); the wheel carries the interpreted modules only")
        return []


setup(ext_modules=_extensions(), cmdclass={"build_ext": _Optional})
