"""Records (dicts) -> Arrow tables of the derived schema, plus partition keys and sorting."""

from __future__ import annotations

from functools import cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .schema import PARTITION_TYPES, arrow_schema, timestamp_fields

SORT_KEYS = [("chat_id", "ascending"), ("chat_username", "ascending"), ("post_id", "ascending")]
_SORT_NULLS_LAST = [(name, order, "at_end") for name, order in SORT_KEYS]
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


@cache
def _build_schema() -> pa.Schema:
    """The data schema with timestamp columns as strings (records carry RFC 3339 text)."""
    stamps = set(timestamp_fields())
    return pa.schema([f.with_type(pa.string()) if f.name in stamps else f for f in arrow_schema()])


def records_to_table(records: list[dict[str, Any]]) -> pa.Table:
    """Validated records -> a table of exactly `arrow_schema()`."""
    table = pa.Table.from_pylist(records, schema=_build_schema())
    target = arrow_schema()
    for name in timestamp_fields():
        index = target.get_field_index(name)
        table = table.set_column(index, target.field(index), table.column(index).cast(target.field(index).type))
    return table


def partition_columns(table: pa.Table, partition_by: tuple[str, ...]) -> dict[str, pa.Array]:
    """The partition key columns for `table` (year int16, month int8, chat string)."""
    date = table.column("date")
    columns: dict[str, pa.Array] = {}
    for key in partition_by:
        if key == "year":
            columns[key] = pc.year(date).cast(PARTITION_TYPES["year"])
        elif key == "month":
            columns[key] = pc.month(date).cast(PARTITION_TYPES["month"])
        elif key == "chat":
            columns[key] = chat_key(table)
    return columns


def chat_key(table: pa.Table) -> pa.ChunkedArray:
    """Lowercase username, else `c<chat_id>`, else null."""
    by_id = pc.binary_join_element_wise("c", table.column("chat_id").cast(pa.string()), "")
    return pc.coalesce(table.column("chat_username"), by_id)


def sort_table(table: pa.Table) -> pa.Table:
    """Stable sort by chat and post id (nulls last)."""
    if table.num_rows < 2:
        return table
    order = pc.sort_indices(table, sort_keys=_SORT_NULLS_LAST)
    return table.take(order)


def partition_label(values: dict[str, Any]) -> str:
    """Hive directory path for one partition, e.g. `year=2024/month=3`."""
    parts = []
    for key, value in values.items():
        parts.append(f"{key}={NULL_PARTITION if value is None else value}")
    return "/".join(parts)
