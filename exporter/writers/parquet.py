"""Parquet writer: zstd, hive partitions, one file per partition, deterministic bytes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq

from ..arrowbuild import NULL_PARTITION, SORT_KEYS
from ..schema import PARTITION_TYPES
from .base import WriteJob, WrittenFile, describe, make_dirs_below

ROW_GROUP = 128_000
FOOTER_KEY = b"tgexport"


class ParquetWriter:
    name = "parquet"
    extension = "parquet"

    def write(self, job: WriteJob, partitions: Iterable[tuple[dict[str, Any], pa.Table]]) -> list[WrittenFile]:
        """One file `<stem>-0.parquet` per partition, written as soon as its table arrives.

        `pq.ParquetWriter` per partition (not `write_dataset`): memory holds one partition at a
        time, and row groups are cut every ROW_GROUP rows whatever the chunks of the table are,
        so the bytes depend only on the rows.
        """
        written: list[WrittenFile] = []
        for values, table in partitions:
            schema = table.schema.with_metadata({FOOTER_KEY: json.dumps(job.footer, sort_keys=True)})
            folder = job.root / "posts" / hive_path(values)
            make_dirs_below(job.root, folder)
            path = folder / f"{job.stem}-0.{self.extension}"
            sorting, statistics = _column_settings(table.schema.remove_metadata())
            with pq.ParquetWriter(
                path,
                schema,
                compression="zstd",
                use_dictionary=False,  # zstd alone makes smaller files, faster, for these columns
                write_statistics=list(statistics),
                sorting_columns=sorting,
            ) as out:
                out.write_table(table.replace_schema_metadata(schema.metadata), row_group_size=ROW_GROUP)
            written.append(describe(job.root, path, dict(values), table.num_rows))
        return sorted(written, key=lambda f: f.path)


@lru_cache(maxsize=8)
def _column_settings(schema: pa.Schema) -> tuple[tuple[pq.SortingColumn, ...], tuple[str, ...]]:
    """Sorting columns and statistics columns of a schema (once: a Parquet schema conversion each)."""
    sorting = pq.SortingColumn.from_ordering(schema, [(k, o) for k, o in SORT_KEYS])
    return sorting, tuple(_statistics_columns(schema))


def _statistics_columns(schema: pa.Schema) -> list[str]:
    """Min/max statistics where readers can prune row groups with them: the numbers, dates and
    flags, and the short coded strings; not free text (long, never filtered by range)."""
    coded = {"chat_username", "chat_type", "kind", "service_action", "sender_id", "media_type", "source_format"}
    return [
        f.name for f in schema if not pa.types.is_nested(f.type) and (not pa.types.is_string(f.type) or f.name in coded)
    ]


def hive_path(values: dict[str, Any]) -> str:
    """`year=2024/month=3`; null -> the Hive default partition; strings percent-encoded like pyarrow."""
    parts = []
    for key, value in values.items():
        text = NULL_PARTITION if value is None else quote(str(value), safe="")
        parts.append(f"{key}={text}")
    return "/".join(parts)


def _partition_of(path: Path, root: Path, keys: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for segment in path.relative_to(root / "posts").parts[:-1]:
        key, _, raw = segment.partition("=")
        if raw == "__HIVE_DEFAULT_PARTITION__":
            values[key] = None
        else:
            values[key] = int(raw) if key in PARTITION_TYPES else raw
    return {k: values.get(k) for k in keys}
