"""The segmenter worker: the faust app (``app``), the engine that applies input records to per-customer state
(``engine``, ``edge``, ``partition``), the flush that makes it durable and visible (``flush``, ``persist``), and the
garbage-collection policy (``collector``). Imports the foundation, ``streams.kafka`` and ``streams.readmodel``;
never ``streams.actions``, ``stack`` or ``cli``."""
