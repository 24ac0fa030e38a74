"""The core's error tree: one root, one class per kind of failure."""

from __future__ import annotations


class SegmenterError(Exception):
    """Root of every error segmenter raises on purpose."""


class InvalidEventError(SegmenterError, ValueError):
    """An event the core cannot apply (bad money, bad time); it belongs on the dead-letter topic."""


class InvalidRuleError(SegmenterError, ValueError):
    """A ruleset that cannot be used; the message names the file, the place and the reason."""


class InvalidStateError(SegmenterError, ValueError):
    """Serialised state that cannot be decoded (corrupt bytes or an unknown format version)."""


class InvalidWindowError(SegmenterError, ValueError):
    """A window length that is not of the form ``12m``/``6m`` (calendar months) or ``365d``."""
