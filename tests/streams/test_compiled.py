"""The compiled hot path (``streams.compiled``): used when a current build exists (in a checkout's ``var/compiled/``
or inside an installed wheel), never when it is stale or turned off, and then the very modules the worker
imports."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

import segmenter.state
import streams.worker.edge
from streams import compiled

ROOT = Path(__file__).resolve().parents[2]
INSTALLABLE = os.geteuid() == 0 and shutil.which("apt-get") is not None  # what `make install` needs to add gcc


def test_the_suite_runs_the_hot_path_compiled_where_it_can_be_built() -> None:
    status = compiled.install()
    if os.environ.get(compiled.OFF) == "0":
        assert status.startswith("interpreted")
        assert not compiled.active()
        return
    # mypyc comes with the dev extra `make install` installs: its absence is a broken install
    assert importlib.util.find_spec("mypyc") is not None, "mypyc is missing: run `make install` (the dev extra)"
    if shutil.which(os.environ.get("CC", "cc")) is None:
        # skipped only where `make install` could not have installed gcc; where it could, its absence is a failure
        assert not INSTALLABLE, "no C compiler though `make install` can install Debian's gcc here (root, apt-get)"
        pytest.skip(f"no C compiler, and `make install` needs root and apt-get to install one: {status}")
    # make install compiles wherever it can: a test run on a stale or missing build would test the wrong thing
    assert status.startswith("compiled"), status
    assert compiled.active()
    assert Path(segmenter.state.__file__).is_relative_to(compiled.TARGET)
    assert Path(streams.worker.edge.__file__).is_relative_to(compiled.TARGET)


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """``compiled`` looking at an empty tree ``tmp_path`` with its build in ``tmp_path/build``, nothing decided."""
    for package in compiled.PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "a.py").write_text("x = 1\n")
    monkeypatch.delenv(compiled.OFF, raising=False)
    monkeypatch.setattr(compiled, "ROOT", tmp_path)
    monkeypatch.setattr(compiled, "TARGET", tmp_path / "build")
    monkeypatch.setattr(compiled, "_state", {})
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))  # whatever install() adds goes with the test
    return tmp_path


def _again(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(compiled, "_state", {})
    return compiled.install()


def test_a_missing_stale_or_unwanted_build_runs_the_interpreted_modules(fresh: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    assert compiled.install().startswith("interpreted (no compiled build")
    (fresh / "build").mkdir()
    (fresh / "build" / compiled.STAMP).write_text(compiled.stamp())
    (fresh / "streams" / "a.py").write_text("x = 22\n")  # another size: another stamp
    assert _again(monkeypatch) == "interpreted (the source changed since the compiled build: run `make install`)"
    monkeypatch.setenv(compiled.OFF, "0")
    assert _again(monkeypatch) == f"interpreted ({compiled.OFF}=0)"


def test_the_import_time_stamp_reads_no_file_and_moves_with_a_touch(fresh: Path) -> None:
    before = compiled.stamp()
    os.utime(fresh / "schemas" / "a.py", ns=(1, 1))
    assert compiled.stamp() != before
    assert "x = 1" not in compiled.stamp()


def test_the_fingerprint_moves_with_the_contents_of_any_source_module(fresh: Path) -> None:
    before = compiled.fingerprint()
    os.utime(fresh / "streams" / "a.py", ns=(1, 1))
    assert compiled.fingerprint() == before  # touched, not changed: make compiled renews the stamp only
    (fresh / "streams" / "a.py").write_text("x = 2\n")
    assert compiled.fingerprint() != before


def _wheel_tree(fresh: Path, modules: tuple[str, ...]) -> None:
    """``fresh`` laid out as an installed wheel: each module's source with an extension file beside it."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    for module in compiled.MODULES:
        (fresh / module).parent.mkdir(parents=True, exist_ok=True)
        (fresh / module).write_text("WHERE = 'source'\n")
        extension = (fresh / module).with_name(Path(module).stem + suffix)
        extension.unlink(missing_ok=True)
        if module in modules:
            extension.write_bytes(b"not loaded by this test")


def test_an_installed_wheels_extensions_are_used_as_they_are(fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _wheel_tree(fresh, compiled.MODULES)
    before = list(sys.meta_path)
    assert compiled.install() == f"compiled with mypyc ({len(compiled.MODULES)} modules in the installed package)"
    assert sys.meta_path == before  # Python's own import prefers the extension: no finder, no check
    _wheel_tree(fresh, compiled.MODULES[1:])
    assert _again(monkeypatch).startswith("partly compiled (the installed package lacks segmenter.state")


def test_turned_off_an_installed_wheel_serves_the_source_beside_each_extension(
        fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _wheel_tree(fresh, compiled.MODULES)
    monkeypatch.setenv(compiled.OFF, "0")
    for name in [name for name in sys.modules if name.replace(".", "/") + ".py" in compiled.MODULES]:
        monkeypatch.delitem(sys.modules, name)  # as at the start of a process: none imported yet
    assert compiled.install() == f"interpreted ({compiled.OFF}=0; the wheel's compiled modules are not used)"
    spec = sys.meta_path[0].find_spec("segmenter.state", None)
    assert spec is not None
    assert spec.origin == str(fresh / "segmenter" / "state.py")
    assert sys.meta_path[0].find_spec("segmenter.rules.loader", None) is None  # only the hot path's modules


def test_setup_compiles_exactly_the_modules_the_runtime_looks_for() -> None:
    """setup.py reads ``MODULES`` from streams/compiled.py without importing the package; each is a source file."""
    spec = importlib.util.spec_from_file_location("segmenter_setup_modules", ROOT / "streams" / "compiled.py")
    assert spec is not None
    assert spec.loader is not None
    alone = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(alone)  # the standard library only: no dependency is installed when setup.py runs
    assert alone.MODULES == compiled.MODULES
    assert all((ROOT / module).is_file() for module in compiled.MODULES)
