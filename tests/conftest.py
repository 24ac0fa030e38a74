"""The suite runs what the worker runs: the compiled hot path when a current build exists (``streams.compiled``),
else, and with ``SEGMENTER_COMPILED=0``, the interpreted modules. Imported before any test module."""

import streams  # noqa: F401 - its import puts the compiled modules, if any, ahead of the source
