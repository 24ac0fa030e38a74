"""Kafka: create and write topics, read them to their true end, group lag, the control and rules topics, dead
letters, and every use of faust's and aiokafka's internals (``faust_compat``, pinned by
``tests/streams/test_faust_compat.py``). Imports the foundation only (``streams.names``, ``settings``, ``text``,
``progress``)."""
