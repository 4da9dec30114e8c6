"""Records (dicts) -> Arrow tables of the derived schema, plus partition keys and sorting."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
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
    if table.num_rows < 2 or _in_order(table):
        return table
    order = pc.sort_indices(table, sort_keys=_SORT_NULLS_LAST)
    return table.take(order)


def _in_order(table: pa.Table) -> bool:
    """Already sorted (the usual case: one chat, ids ascending)? A stable sort would then keep it."""
    if table.column("chat_username").null_count != table.num_rows:
        return False
    chat, post = table.column("chat_id"), table.column("post_id")
    chat_null = chat.is_null().to_numpy(zero_copy_only=False)
    chat_id = pc.fill_null(chat, 0).to_numpy()
    post_null = post.is_null().to_numpy(zero_copy_only=False)
    post_id = pc.fill_null(post, 0).to_numpy()
    same_chat = (chat_null[1:] == chat_null[:-1]) & (chat_id[1:] == chat_id[:-1])
    chat_up = (chat_null[1:] > chat_null[:-1]) | ((chat_null[1:] == chat_null[:-1]) & (chat_id[1:] > chat_id[:-1]))
    post_up = (post_null[1:] > post_null[:-1]) | ((post_null[1:] == post_null[:-1]) & (post_id[1:] >= post_id[:-1]))
    return bool(np.all(chat_up | (same_chat & post_up)))


def partition_label(values: dict[str, Any]) -> str:
    """Hive directory path for one partition, e.g. `year=2024/month=3`."""
    parts = []
    for key, value in values.items():
        parts.append(f"{key}={NULL_PARTITION if value is None else value}")
    return "/".join(parts)


class KeyCheck:
    """Collects the record keys of the tables written by a task, to tell the merge step whether
    it has anything to do: `summary()["unique"]` is True only when no two rows can share a
    canonical key (chat id + post id, and no usernames to join through). Keys are kept as 64-bit
    hashes, so a collision can only make the answer "not unique", never wrongly "unique"."""

    _MIX = np.uint64(0x9E3779B97F4A7C15)

    def __init__(self) -> None:
        self.hashes: list[np.ndarray] = []
        self.chats: set[int] = set()
        self.usernames = False

    def add(self, table: pa.Table) -> None:
        if table.column("chat_username").null_count != table.num_rows:
            self.usernames = True
        chat = table.column("chat_id")
        if chat.null_count == table.num_rows:
            return  # no chat id and (when no usernames) no key: never merged
        valid = chat.is_valid().to_numpy(zero_copy_only=False)
        ids = pc.fill_null(chat, 0).to_numpy().view(np.uint64)
        posts = pc.fill_null(table.column("post_id"), 0).to_numpy().view(np.uint64)
        self.hashes.append((ids * self._MIX + posts)[valid])
        self.chats.update(pc.unique(chat.drop_null()).to_pylist())

    def watch(self, partitions: Any) -> Any:
        """Pass (values, table) pairs through, adding each table."""
        for values, table in partitions:
            self.add(table)
            yield values, table

    def all_hashes(self) -> np.ndarray:
        return np.concatenate(self.hashes) if self.hashes else np.zeros(0, np.uint64)

    def summary(self, hashes: np.ndarray | None = None) -> dict[str, Any]:
        hashes = np.sort(self.all_hashes() if hashes is None else hashes)
        unique = not bool(np.any(hashes[1:] == hashes[:-1]))
        return {"chats": sorted(self.chats), "unique": unique and not self.usernames, "usernames": self.usernames}


def merge_needed(summaries: list[dict[str, Any] | None]) -> bool:
    """False when the merge step can be skipped: every input's keys are unique, none carries
    usernames, and no chat id occurs in two inputs (so no two rows share a canonical key)."""
    seen: set[int] = set()
    for summary in summaries:
        if summary is None or not summary["unique"]:
            return True
        chats = set(summary["chats"])
        if chats & seen:
            return True
        seen |= chats
    return False
