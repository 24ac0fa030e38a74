"""The ``segmenter`` command: the parser and its error handling (``main``), shared loaders (``common``), the
commands (``offline_commands``: no broker; ``stream_commands``: the running system; ``demo_tour``), and the work
they do (``classify_job``, ``csv_input``, ``ops``, ``demo_data``). May import every room; nothing imports it.
Commands import the heavy rooms (faust, aiokafka) when they run, so ``segmenter --help`` and ``classify`` stay
quick; never to dodge a circle."""
