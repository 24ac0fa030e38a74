"""The benchmarks (``make bench``). Importing ``streams`` first puts the compiled hot path, when a current build
exists, ahead of the source (``streams.compiled``), so an in-process bench measures what the worker runs."""

import streams  # noqa: F401 - imported for its side effect: the compiled modules, if any
