"""Parquet writer: `pyarrow.dataset.write_dataset`, zstd, hive partitions, deterministic bytes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ..arrowbuild import SORT_KEYS
from ..schema import PARTITION_TYPES
from .base import WriteJob, WrittenFile, describe

ROW_GROUP = 128_000
FOOTER_KEY = b"tgexport"


class ParquetWriter:
    name = "parquet"
    extension = "parquet"

    def write(self, job: WriteJob, partitions: Iterable[tuple[dict[str, Any], pa.Table]]) -> list[WrittenFile]:
        iterator = iter(partitions)
        first = next(iterator, None)
        if first is None:
            return []
        keys = list(first[0])
        part_schema = pa.schema([(k, PARTITION_TYPES.get(k, pa.string())) for k in keys])
        data_schema = first[1].schema.with_metadata({FOOTER_KEY: json.dumps(job.footer, sort_keys=True)})
        full_schema = pa.schema(list(data_schema) + list(part_schema), metadata=data_schema.metadata)
        written: list[WrittenFile] = []
        root = job.root

        def visit(file: Any) -> None:
            path = Path(file.path)
            written.append(describe(root, path, _partition_of(path, root, keys), file.metadata.num_rows))

        fmt = ds.ParquetFileFormat()
        options = fmt.make_write_options(
            compression="zstd",
            sorting_columns=pq.SortingColumn.from_ordering(data_schema, [(k, o) for k, o in SORT_KEYS]),
        )
        # One write_dataset call per partition: a call keeps every open file's rows buffered until
        # it ends, so a single call over all partitions would hold the whole input in memory.
        for part in _chain(first, iterator):
            ds.write_dataset(
                _batches(part, iter(()), full_schema),
                base_dir=str(root / "posts"),
                schema=full_schema,
                format=fmt,
                file_options=options,
                partitioning=ds.partitioning(part_schema, flavor="hive"),
                basename_template=f"{job.stem}-{{i}}.parquet",
                existing_data_behavior="overwrite_or_ignore",
                preserve_order=True,
                max_partitions=1 << 20,
                max_open_files=256,
                max_rows_per_group=ROW_GROUP,
                min_rows_per_group=0,
                file_visitor=visit,
            )
        return sorted(written, key=lambda f: f.path)


def _batches(first: tuple, rest: Iterator, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    for values, table in _chain(first, rest):
        for batch in table.to_batches():
            columns = list(batch.columns) + [
                pa.array([values[k]] * batch.num_rows, type=schema.field(k).type) for k in values
            ]
            yield pa.RecordBatch.from_arrays(columns, schema=schema)


def _chain(first: tuple, rest: Iterator) -> Iterator[tuple]:
    yield first
    yield from rest


def _partition_of(path: Path, root: Path, keys: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for segment in path.relative_to(root / "posts").parts[:-1]:
        key, _, raw = segment.partition("=")
        if raw == "__HIVE_DEFAULT_PARTITION__":
            values[key] = None
        else:
            values[key] = int(raw) if key in PARTITION_TYPES else raw
    return {k: values.get(k) for k in keys}
