"""``python -m streams.cli``: the ``segmenter`` command."""

import sys

from streams.cli.main import main

sys.exit(main())
