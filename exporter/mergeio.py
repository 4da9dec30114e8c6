"""Applying a merge to the data files of a run: rewrite affected files under their own names."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from . import writers
from .merge import merge_files
from .writers.base import WriteJob, WrittenFile, describe
from .writers.parquet import FOOTER_KEY


def merge_into(
    files: list[tuple[Path, WrittenFile]],
    counters: dict[str, Any],
    run_id: str,
    keep_chat: bool,
    rewrite: Callable[[Path, WrittenFile, pa.Table], WrittenFile | None],
) -> list[tuple[Path, WrittenFile]]:
    """Merge duplicates across `files`; update per-input counts; return the files that remain."""
    paths = [root / f.path for root, f in files]
    new_files: list[tuple[Path, WrittenFile] | None] = list(files)

    def apply(index: int, table: pa.Table) -> None:
        root, old = files[index]
        written = rewrite(root, old, table)
        new_files[index] = None if written is None else (root, written)

    outcome = merge_files(
        paths,
        sum(f.rows for _, f in files),
        run_id,
        apply,
        keep_chat=keep_chat,
        work=files[-1][0] if files else None,  # the staging folder: spill beside the data
    )
    for sha, count in outcome.merged_by_input.items():
        counters[sha].merged += count
        counters[sha].written -= count
    return [f for f in new_files if f is not None]


def rewrite_in_place(to: str) -> Callable:
    """Rewrite an affected file of the staging dataset under its own name."""

    def rewrite(root: Path, old: WrittenFile, table: pa.Table) -> WrittenFile | None:
        path = root / old.path
        footer = read_footer(path)
        path.unlink()
        if table.num_rows == 0:
            return None
        return write_one(root, old, table, to, footer)

    return rewrite


def read_footer(path: Path) -> dict[str, Any]:
    """The `tgexport` footer document of a Parquet data file ({} for JSONL)."""
    if not path.name.endswith(".parquet"):
        return {}
    raw = (pq.read_metadata(path).metadata or {}).get(FOOTER_KEY)
    return json.loads(raw) if raw else {}


def write_one(root: Path, old: WrittenFile, table: pa.Table, to: str, footer: dict[str, Any]) -> WrittenFile:
    """Write `table` as the file `old.path` under `root` (same partition, same name)."""
    stem = old.path.rsplit("/", 1)[-1].rsplit("-", 1)[0]
    (written,) = writers.get(to).write(WriteJob(root, stem, footer), [(old.partition, table)])
    if written.path != old.path:
        os.replace(root / written.path, root / old.path)
        written = describe(root, root / old.path, old.partition, written.rows)
    return written
