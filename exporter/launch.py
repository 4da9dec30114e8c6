"""The `tgexport` console script: starts hashing big inputs (`prehash`), then loads the CLI."""

from __future__ import annotations

import sys


def run() -> None:
    from . import prehash

    prehash.start(sys.argv)
    from .cli import run as cli_run

    cli_run()
