"""Streaming partition writer: data files are written while the input is still being read.

Exports are nearly always in date order, so the rows of a partition (year/month, chat) arrive
together. `PartitionSink` keeps the partitions the current batches touch in memory and writes a
partition's file as soon as a batch arrives that does not touch it. Rows that turn up later for
a partition already written ("late" rows) are kept aside, and at `close()` that partition is
read back, joined with them and written again. Each file therefore always holds all of its
partition's rows, in arrival order, stable-sorted by chat and post id — the same bytes as
writing everything at the end (stable_sort(sorted(A) + B) == stable_sort(A + B)).

Memory: the open partitions, bounded by `budget` bytes; beyond it the oldest open rows go to an
Arrow IPC spill (`spill.PartitionSpill`) and are joined back, in order, when written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from .arrowbuild import KeyCheck, partition_columns, sort_table
from .schema import arrow_schema
from .spill import PartitionSpill, group_slices
from .writers.base import WriteJob, WrittenFile

BUDGET = 96 << 20


@dataclass
class _Open:
    values: dict[str, Any]
    tables: list[pa.Table] = field(default_factory=list)
    nbytes: int = 0


class PartitionSink:
    """Splits tables by partition and writes each partition's file once (see module docstring)."""

    def __init__(self, writer: Any, job: WriteJob, partition_by: tuple[str, ...], work: Path, budget: int = BUDGET):
        self.writer, self.job, self.partition_by = writer, job, partition_by
        self.budget = budget
        self._open: dict[tuple, _Open] = {}
        self._written: dict[tuple, WrittenFile] = {}
        self._values: dict[tuple, dict[str, Any]] = {}
        self._overflow = PartitionSpill(work / "overflow", partition_by)
        self._late = PartitionSpill(work / "late", partition_by)
        self._hashes: dict[tuple, KeyCheck] = {}
        self.rewrites = 0

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        touched = set()
        for key, values, part in group_slices(table, partition_columns(table, self.partition_by)):
            touched.add(key)
            self._values[key] = values
            if key in self._written:
                self._late.add_slice(key, values, part)
                continue
            entry = self._open.setdefault(key, _Open(values))
            entry.tables.append(part)
            entry.nbytes += part.nbytes
        for key in [k for k in self._open if k not in touched]:
            self._write(key)
        self._limit_memory()

    def _limit_memory(self) -> None:
        total = sum(e.nbytes for e in self._open.values())
        for key in sorted(self._open, key=lambda k: -self._open[k].nbytes):
            if total <= self.budget:
                return
            entry = self._open[key]
            for part in entry.tables:
                self._overflow.add_slice(key, entry.values, part)
            total -= entry.nbytes
            entry.tables, entry.nbytes = [], 0

    def _rows_of(self, key: tuple) -> list[pa.Table]:
        tables = self._overflow.tables(key)
        entry = self._open.pop(key, None)
        return tables + (entry.tables if entry else [])

    def _write(self, key: tuple, tables: list[pa.Table] | None = None) -> None:
        tables = self._rows_of(key) if tables is None else tables
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        table = sort_table(table).combine_chunks()
        check = KeyCheck()
        check.add(table)
        self._hashes[key] = check
        (written,) = self.writer.write(self.job, [(self._values[key], table)])
        self._written[key] = written

    def close(self) -> list[WrittenFile]:
        """Write what is still open, rewrite partitions that got late rows; the files, by path."""
        for key in list(self._open):
            self._write(key)
        for key in self._late.keys():  # noqa: SIM118 - PartitionSpill.keys(), not a dict
            self.rewrites += 1
            self._write(key, [self.read_back(self._written[key]), *self._late.tables(key)])
        return sorted(self._written.values(), key=lambda f: f.path)

    def read_back(self, written: WrittenFile) -> pa.Table:
        """A written file as a table of the data schema (Parquet or JSONL)."""
        from .merge import read_data_file

        table = read_data_file(self.job.root / written.path)
        return table.select(arrow_schema().names).cast(arrow_schema())

    def discard(self) -> None:
        """Remove every file written so far (the input is converted again another way)."""
        for written in self._written.values():
            (self.job.root / written.path).unlink(missing_ok=True)
        self._written.clear()
        self._open.clear()

    def key_check(self) -> KeyCheck:
        total = KeyCheck()
        for check in self._hashes.values():
            total.hashes += check.hashes
            total.chats |= check.chats
            total.usernames = total.usernames or check.usernames
        return total

    def values_of(self, key: tuple) -> dict[str, Any]:
        return self._values[key]

    def files_by_key(self) -> dict[tuple, WrittenFile]:
        return dict(self._written)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self._written.values())
