"""The I/O shell around the core: the faust worker, the embedded stack, the CLI."""
