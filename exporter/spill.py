"""Bounded-memory partitioning of one task's rows.

Validated batches are split by partition and spilled to Arrow IPC files on disk; at the end
each partition is read back alone, sorted, and handed to the writer. Memory is bounded by one
batch plus the largest single partition of one input, never by the whole input.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from .arrowbuild import partition_columns, sort_table


@dataclass
class _Partition:
    values: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    rows: int = 0


class PartitionSpill:
    """Collects tables, split by partition key, in a private spill folder."""

    def __init__(self, folder: Path, partition_by: tuple[str, ...]) -> None:
        self.folder = folder
        self.partition_by = partition_by
        self._parts: dict[tuple, _Partition] = {}
        self._count = 0

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        for key, values, part in group_slices(table, partition_columns(table, self.partition_by)):
            self.add_slice(key, values, part)

    def add_slice(self, key: tuple, values: dict[str, Any], table: pa.Table) -> None:
        """Spill rows of one partition (`key` is `tuple(values.values())`)."""
        part = self._parts.setdefault(key, _Partition(values))
        self.folder.parent.mkdir(exist_ok=True)  # not parents=True: see writers.base.make_dirs_below
        self.folder.mkdir(exist_ok=True)
        path = self.folder / f"{self._count:08d}.arrow"
        self._count += 1
        with ipc.new_file(path, table.schema) as writer:
            writer.write_table(table)
        part.files.append(path)
        part.rows += table.num_rows

    def partition_keys(self) -> list[tuple]:
        return list(self._parts)

    def tables(self, key: tuple) -> list[pa.Table]:
        """The spilled tables of one partition, in the order they were added (then forgotten)."""
        part = self._parts.pop(key, None)
        return [read_spill(path) for path in part.files] if part else []

    def files(self, key: tuple) -> list[Path]:
        """The spill files of one partition, in order (they stay on disk: see `read_spill`)."""
        return list(self._parts[key].files)

    def partitions(self) -> Iterator[tuple[dict[str, Any], pa.Table]]:
        """Each partition's rows, sorted by chat and post id, in partition order (nulls last)."""

        def order(key: tuple) -> tuple:
            return tuple((v is None, v if v is not None else 0) for v in key)

        for key in sorted(self._parts, key=order):
            part = self._parts[key]
            tables = []
            for path in part.files:
                with pa.memory_map(str(path)) as source:
                    tables.append(ipc.open_file(source).read_all())
            table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
            yield part.values, sort_table(table).combine_chunks()
            for path in part.files:
                path.unlink()

    def state(self) -> list[tuple[tuple, dict[str, Any], list[str], int]]:
        """What `joined` needs to take these spill files over (plain data, picklable)."""
        return [(key, p.values, [str(f) for f in p.files], p.rows) for key, p in self._parts.items()]

    @classmethod
    def joined(cls, folder: Path, partition_by: tuple[str, ...], states: list[list[tuple]]) -> PartitionSpill:
        """One spill over the files of several (in order: a partition's rows keep that order)."""
        spill = cls(folder, partition_by)
        for state in states:
            for key, values, files, rows in state:
                part = spill._parts.setdefault(tuple(key), _Partition(values))
                part.files.extend(Path(f) for f in files)
                part.rows += rows
        return spill

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self._parts.values())


def read_spill(path: Path) -> pa.Table:
    """One spill file's rows (the file is then removed)."""
    with pa.memory_map(str(path)) as source:
        table = ipc.open_file(source).read_all()
    Path(path).unlink()
    return table


def group_slices(table: pa.Table, keys: dict[str, pa.Array]) -> Iterator[tuple[tuple, dict[str, Any], pa.Table]]:
    """(key, partition values, rows) per partition present in `table`, rows in arrival order."""
    codes = _group_codes(list(keys.values()), table.num_rows)
    if np.any(codes[1:] < codes[:-1]):  # rows of a partition are not contiguous: group them
        order = np.argsort(codes, kind="stable")
        table, codes = table.take(pa.array(order)), codes[order]
        keys = {k: v.take(pa.array(order)) for k, v in keys.items()}
    starts = np.concatenate([[0], np.flatnonzero(np.diff(codes)) + 1, [table.num_rows]])
    for start, stop in zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True):
        values = {k: keys[k][start].as_py() for k in keys}
        yield tuple(values.values()), values, table.slice(start, stop - start)


def _group_codes(columns: list[pa.Array], n: int) -> np.ndarray:
    """An integer per row, equal for rows of the same partition (in order of first appearance)."""
    codes = np.zeros(n, np.int64)
    for column in columns:
        encoded = pc.dictionary_encode(column, null_encoding="encode")
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        codes = codes * max(1, len(encoded.dictionary)) + encoded.indices.to_numpy(zero_copy_only=False)
    return codes
