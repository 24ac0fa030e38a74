"""The embedded stack for a machine with no Docker: the Tansu broker and ``redis-server`` from their PyPI wheels
(``embedded``), and worker processes with their logs and readiness files (``processes``). Imports the foundation
only: processes are started by command line, never by importing the worker."""
