"""The `chikyu-daq` command line: `root` holds the app, one module per command beside it."""

from chikyu_daq.cli.root import main

__all__ = ["main"]
