"""The explicit registry of output writers (DESIGN.md §2)."""

from __future__ import annotations

from ..errors import UsageError
from .base import Writer, WrittenFile
from .jsonl import JsonlWriter, JsonlZstWriter
from .parquet import ParquetWriter

_WRITERS: dict[str, type] = {w.name: w for w in (ParquetWriter, JsonlWriter, JsonlZstWriter)}

__all__ = ["Writer", "WrittenFile", "get", "names"]


def names() -> list[str]:
    return list(_WRITERS)


def get(name: str) -> Writer:
    if name not in _WRITERS:
        raise UsageError(f"unknown output format {name!r}", hint="choose one of: " + ", ".join(_WRITERS))
    return _WRITERS[name]()
