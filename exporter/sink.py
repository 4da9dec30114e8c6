"""Streaming partition writer: data files are written while the input is still being read.

Exports are nearly always in date order, so the rows of a partition (year/month, chat) arrive
together. `PartitionSink` keeps the partitions the current batches touch in memory and writes a
partition's file as soon as a batch arrives that does not touch it. Rows that turn up later for
a partition already written ("late" rows) are kept aside, and at `close()` that partition is
read back, joined with them and written again. Each file therefore always holds all of its
partition's rows, in arrival order, stable-sorted by chat and post id — the same bytes as
writing everything at the end (stable_sort(sorted(A) + B) == stable_sort(A + B)).

Memory: the open partitions, bounded by `budget` bytes; beyond it the oldest open rows go to an
Arrow IPC spill (`spill.PartitionSpill`) and are joined back, in order, when written. Open rows
are slices that share their batch's buffers, so what they cost is the whole batches they hold:
a batch split into many partitions (a TGDataset file of many channels, each going through every
month) stays in memory as long as any of its slices is open, and is counted whole.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from .arrowbuild import KeyCheck, partition_columns, sorted_contiguous
from .schema import arrow_schema
from .spill import PartitionSpill, group_slices, read_spill
from .writers.base import WriteJob, WrittenFile

BUDGET = 96 << 20
WRITE_BUDGET = 64 << 20


class WriteBudget:
    """Bytes of partitions being joined and written at once, per process.

    Worker threads (executors.ThreadPool) would otherwise each hold a big partition's joined copy
    and encoding buffers at the same moment: the peak of a 5M-message run. Small partitions are
    written side by side; one bigger than the whole budget is written alone.
    """

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        nbytes = min(nbytes, self.limit)
        with self._cond:
            while self.used and self.used + nbytes > self.limit:
                self._cond.wait()
            self.used += nbytes
        try:
            yield
        finally:
            with self._cond:
                self.used -= nbytes
                self._cond.notify_all()


WRITING = WriteBudget(WRITE_BUDGET)


def write_partition(
    writer: Any, job: WriteJob, values: dict[str, Any], tables: list[pa.Table], nbytes: int | None = None
) -> WrittenFile:
    """One partition's file from its rows in arrival order (`tables` is handed over, emptied).

    `nbytes`: the rows' size if the caller keeps count; else the tables' buffers, which is exact
    for tables read back from spills and files (`Table.nbytes` works out slices: 12x slower).
    """
    with WRITING.hold(sum(t.get_total_buffer_size() for t in tables) if nbytes is None else nbytes):
        (written,) = writer.write(job, [(values, sorted_contiguous(tables))])
    return written


@dataclass
class _Open:
    values: dict[str, Any]
    tables: list[pa.Table] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)  # the batch each table is a slice of
    nbytes: int = 0


@dataclass
class Piece:
    """Rows of one partition held by a range: a written file, or spilled Arrow IPC files."""

    written: WrittenFile | None = None
    spilled: list[str] = field(default_factory=list)


class PartitionSink:
    """Splits tables by partition and writes each partition's file once (see module docstring).

    Eager while the input comes partition after partition; the first late row (the input came
    back to a partition already written: typically the next chat of an account export) switches
    it to spilling, so each partition is written at most twice. `close(defer=True)` (a range of a
    split input) writes nothing more and hands back what it holds per partition (`pieces`).
    """

    def __init__(self, writer: Any, job: WriteJob, partition_by: tuple[str, ...], work: Path, budget: int = BUDGET):
        self.writer, self.job, self.partition_by = writer, job, partition_by
        self.budget = budget
        self.eager = True
        self._open: dict[tuple, _Open] = {}
        self._written: dict[tuple, WrittenFile] = {}
        self._values: dict[tuple, dict[str, Any]] = {}
        self._overflow = PartitionSpill(work / "overflow", partition_by)
        self._late = PartitionSpill(work / "late", partition_by)
        self.keys = KeyCheck()
        self.rewrites = 0
        self._batches = 0
        self._held: dict[int, list[int]] = {}  # batch number -> [its buffers' bytes, open slices], oldest first
        self.held_bytes = 0

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self.keys.add(table)
        touched = set()
        row_bytes = table.nbytes / table.num_rows  # once per batch, not per slice
        self._batches += 1
        batch, batch_bytes = self._batches, table.get_total_buffer_size()
        for key, values, part in group_slices(table, partition_columns(table, self.partition_by)):
            touched.add(key)
            self._values[key] = values
            if key in self._written:
                self._late.add_slice(key, values, part)
                self.eager = False
                continue
            entry = self._open.setdefault(key, _Open(values))
            entry.tables.append(part)
            entry.batches.append(batch)
            entry.nbytes += int(part.num_rows * row_bytes)
            self._hold(batch, batch_bytes)
        for key in [k for k in self._open if k not in touched]:
            self._write(key) if self.eager else self._spill(key)
        self._limit_memory()

    def _hold(self, batch: int, nbytes: int) -> None:
        held = self._held.get(batch)
        if held is None:
            self._held[batch] = [nbytes, 1]
            self.held_bytes += nbytes
        else:
            held[1] += 1

    def _release(self, entry: _Open) -> None:
        """The entry's tables are let go: batches no open slice holds any more are freed."""
        for batch in entry.batches:
            held = self._held[batch]
            held[1] -= 1
            if not held[1]:
                del self._held[batch]
                self.held_bytes -= held[0]
        entry.tables, entry.batches, entry.nbytes = [], [], 0

    def _spill(self, key: tuple) -> None:
        entry = self._open[key]
        if entry.tables:  # one spill file for all of them (zero-copy: one IPC batch per slice)
            tables = entry.tables
            self._overflow.add_slice(key, entry.values, pa.concat_tables(tables) if len(tables) > 1 else tables[0])
        self._release(entry)

    def _limit_memory(self) -> None:
        """Spill the partitions that hold the oldest batch until the batches held fit the budget."""
        while self.held_bytes > self.budget and self._held:
            oldest = next(iter(self._held))
            for key in [k for k, e in self._open.items() if oldest in e.batches]:
                self._spill(key)

    def _rows_of(self, key: tuple) -> tuple[list[pa.Table], int | None]:
        """The partition's rows in arrival order, and their size when known without a walk."""
        tables = self._overflow.tables(key)
        entry = self._open.pop(key, None)
        if entry is None:
            return tables, None
        open_tables, nbytes = entry.tables, entry.nbytes
        self._release(entry)
        return tables + open_tables, None if tables else nbytes

    def _write(self, key: tuple, tables: list[pa.Table] | None = None) -> None:
        nbytes = None
        if tables is None:
            tables, nbytes = self._rows_of(key)
        self._written[key] = write_partition(self.writer, self.job, self._values[key], tables, nbytes)

    def close(self, defer: bool = False) -> list[WrittenFile]:
        """Write what is still held, rewrite partitions that got late rows; the files, by path.

        With `defer`, nothing more is written: see `pieces()`.
        """
        if defer:
            for key in list(self._open):
                self._spill(key)
            return sorted(self._written.values(), key=lambda f: f.path)
        for key in list(self._open) + [k for k in self._overflow.partition_keys() if k not in self._open]:
            self._write(key)
        for key in self._late.partition_keys():
            self.rewrites += 1
            self._write(key, [self.read_back(self._written[key]), *self._late.tables(key)])
        return sorted(self._written.values(), key=lambda f: f.path)

    def pieces(self) -> dict[tuple, tuple[dict[str, Any], list[Piece]]]:
        """After `close(defer=True)`: per partition, its values and rows in arrival order."""
        out: dict[tuple, tuple[dict[str, Any], list[Piece]]] = {}
        for key, written in self._written.items():
            out[key] = (self._values[key], [Piece(written=written)])
        for spill in (self._late, self._overflow):
            for key in spill.partition_keys():
                entry = out.setdefault(key, (self._values[key], []))
                entry[1].append(Piece(spilled=[str(p) for p in spill.files(key)]))
        return out

    def read_back(self, written: WrittenFile) -> pa.Table:
        """A written file as a table of the data schema (Parquet or JSONL)."""
        return read_back(self.job.root / written.path)

    def discard(self) -> None:
        """Remove every file written so far (the input is converted again another way)."""
        for written in self._written.values():
            (self.job.root / written.path).unlink(missing_ok=True)
        self._written.clear()
        self._open.clear()
        self._held.clear()
        self.held_bytes = 0

    def key_check(self) -> KeyCheck:
        return self.keys


def read_back(path: Path) -> pa.Table:
    """A data file written by tgexport, as a table of the data schema (Parquet or JSONL)."""
    from .merge import read_data_file

    return read_data_file(path).select(arrow_schema().names).cast(arrow_schema())


def read_pieces(root: Path, pieces: list[Piece]) -> list[pa.Table]:
    """The rows of `pieces` (files relative to `root`, spills absolute), in order."""
    tables = []
    for piece in pieces:
        if piece.written is not None:
            tables.append(read_back(root / piece.written.path))
        tables += [read_spill(Path(path)) for path in piece.spilled]
    return tables
