"""The HTTP API room: reads the Redis read model and produces to topics; imports the foundation, ``kafka`` and
``readmodel`` only."""
