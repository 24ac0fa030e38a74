"""The compiled hot path (``streams.compiled``): used when a current build exists, never when it is stale or
turned off, and then the very modules the worker imports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import segmenter.state
import streams.worker.edge
from streams import compiled


def test_the_suite_runs_the_hot_path_compiled_when_a_current_build_exists() -> None:
    status = compiled.install()
    if os.environ.get(compiled.OFF) == "0":
        assert status.startswith("interpreted")
        assert not compiled.active()
        return
    current = (compiled.TARGET / compiled.FINGERPRINT).is_file() and \
        (compiled.TARGET / compiled.FINGERPRINT).read_text().strip() == compiled.fingerprint()
    if not current:
        pytest.skip(f"no current compiled build here: {status}")
    assert status.startswith("compiled")
    assert compiled.active()
    assert Path(segmenter.state.__file__).is_relative_to(compiled.TARGET)
    assert Path(streams.worker.edge.__file__).is_relative_to(compiled.TARGET)


def test_a_build_older_than_the_source_or_turned_off_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    monkeypatch.delenv(compiled.OFF, raising=False)
    monkeypatch.setattr(compiled, "TARGET", tmp_path)
    monkeypatch.setattr(compiled, "_state", {})
    assert compiled.install().startswith("interpreted (no compiled build")
    (tmp_path / compiled.FINGERPRINT).write_text("an older source\n")
    monkeypatch.setattr(compiled, "_state", {})
    assert compiled.install() == "interpreted (the compiled build is older than the source: run `make install`)"
    monkeypatch.setenv(compiled.OFF, "0")
    monkeypatch.setattr(compiled, "_state", {})
    assert compiled.install() == f"interpreted ({compiled.OFF}=0)"


def test_the_fingerprint_moves_with_any_source_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for package in compiled.PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(compiled, "ROOT", tmp_path)
    before = compiled.fingerprint()
    (tmp_path / "streams" / "a.py").write_text("x = 2\n")
    assert compiled.fingerprint() != before
