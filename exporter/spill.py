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

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from .arrowbuild import NULL_PARTITION, partition_columns, sort_table


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
        keys = partition_columns(table, self.partition_by)
        text_keys = [pc.fill_null(col.cast(pa.string()), NULL_PARTITION) for col in keys.values()]
        combined = pc.binary_join_element_wise(*text_keys, "\x1f") if len(text_keys) > 1 else text_keys[0]
        for label in pc.unique(combined).to_pylist():
            mask = pc.equal(combined, label)
            part_table = table.filter(mask)
            values = {k: keys[k].filter(mask)[0].as_py() for k in keys}
            self._write(tuple(values.values()), values, part_table)

    def _write(self, key: tuple, values: dict[str, Any], table: pa.Table) -> None:
        part = self._parts.setdefault(key, _Partition(values))
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self._count:08d}.arrow"
        self._count += 1
        with ipc.new_file(path, table.schema) as writer:
            writer.write_table(table)
        part.files.append(path)
        part.rows += table.num_rows

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
            yield part.values, sort_table(table)
            for path in part.files:
                path.unlink()

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self._parts.values())
