"""The streaming system around the pure core (``segmenter``): Kafka in, Redis and Kafka out.

Rooms, and what each may import (``tests/streams/test_rooms.py`` enforces it, imports inside functions
included)::

    streams/                the foundation: names, settings, text, progress, stored, failpoints, logs, probes,
                            collector (garbage collection)
                            (import no room)
    streams/kafka/          topics, reading to the true end, lag, control and rules topics, dead letters,
                            faust and aiokafka adaptations, running a faust app      -> foundation
    streams/readmodel/      Redis: the writer (projection), the reader, retries      -> foundation
    streams/worker/         the segmenter worker: faust app, engine, edge, flush     -> foundation, kafka, readmodel
    streams/actions/        the action worker: coupons and alerts exactly once       -> foundation, kafka, readmodel
    streams/api/            the HTTP API and its dashboard                           -> foundation, kafka, readmodel
    streams/stack/          the embedded broker and Redis, worker processes          -> foundation
    streams/cli/            the ``segmenter`` command                                -> every room

Every room may import ``segmenter`` and ``schemas``; neither of those imports ``streams``.
"""

from streams import compiled as _compiled

_compiled.install()  # the compiled hot path, when a current build exists (streams/compiled.py)
