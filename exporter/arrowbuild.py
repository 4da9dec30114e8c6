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


def to_numpy(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """`array.to_numpy(zero_copy_only=False)`, without pyarrow's generic conversion for the usual
    cases: booleans without nulls are unpacked from their bitmap (numpy `unpackbits`), numbers
    without nulls are viewed in place. That conversion is slow per value and imports pandas.
    """
    if isinstance(array, pa.ChunkedArray):
        if array.num_chunks == 1:
            return to_numpy(array.chunk(0))
        if array.num_chunks == 0:
            return array.to_numpy()
        return np.concatenate([to_numpy(chunk) for chunk in array.chunks])
    if array.null_count == 0:
        kind = array.type
        if pa.types.is_boolean(kind):
            if len(array) == 0:
                return np.zeros(0, bool)
            bits = np.frombuffer(array.buffers()[1], np.uint8)
            start = array.offset
            return np.unpackbits(bits, count=start + len(array), bitorder="little")[start:].view(bool)
        if pa.types.is_integer(kind) or pa.types.is_floating(kind):
            return array.to_numpy()
    return array.to_numpy(zero_copy_only=False)


def sorted_contiguous(tables: list[pa.Table]) -> pa.Table:
    """The rows of `tables` (emptied: the caller hands them over), stable-sorted, in one chunk
    per column — the layout the Parquet bytes depend on.

    Column by column, each column's pieces are let go as soon as it is copied, so a partition
    costs its size once plus one column, not twice (the peak of a write on big partitions).
    """
    table = pa.concat_tables(_by_chat(tables)) if len(tables) > 1 else tables[0]
    tables.clear()
    table = sort_table(table)
    schema, columns = table.schema, []
    while table.num_columns:
        column = table.column(0)  # one chunk already (a partition inside one batch): no copy
        columns.append(column.chunk(0) if column.num_chunks == 1 else column.combine_chunks())
        table = table.remove_column(0)
    return pa.Table.from_arrays(columns, schema=schema)


def _by_chat(tables: list[pa.Table]) -> list[pa.Table]:
    """The pieces in chat order (stable), when each holds one chat and no username.

    A partition of an account export arrives chat after chat, in the export's chat order. The
    stable sort by chat and post id of the reordered rows is the same as of the original ones
    (rows of one chat keep their order), and then usually finds them already in order, instead
    of a `take` over every column of the partition.
    """
    keys = []
    for table in tables:
        chat = table.column("chat_id")
        if table.column("chat_username").null_count != table.num_rows or chat.null_count not in (0, table.num_rows):
            return tables
        if chat.null_count:
            keys.append((True, 0))
            continue
        low, high = pc.min_max(chat).values()
        if low != high:
            return tables
        keys.append((False, low.as_py()))
    order = sorted(range(len(tables)), key=keys.__getitem__)
    return [tables[i] for i in order]


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
    chat_null = to_numpy(chat.is_null())
    chat_id = pc.fill_null(chat, 0).to_numpy()
    post_null = to_numpy(post.is_null())
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
    """Tells the merge step whether a task's rows can share a record key, in O(chats) memory.

    Telegram exports list a chat's messages by ascending id, Telethon dumps (`iter_messages`) by
    descending id, so the check is: per chat id, the post ids run strictly one way, in the order
    the rows arrive. Then no two rows share (chat id, post id). Any turn, a row that knows its
    chat only by username (which the merge joins to chat ids), or a missing post id makes
    `summary()["unique"]` False: the merge step then runs as before, so the check can only skip
    work that has nothing to do.
    """

    def __init__(self) -> None:
        # chat id -> (first, last) post id in arrival order, and the way they run (1 up, -1 down,
        # 0 a single id so far)
        self.spans: dict[int, tuple[int, int, int]] = {}
        self.monotonic = True  # post ids strictly one way per chat, so far
        self.usernames = False

    @property
    def chats(self) -> set[int]:
        return set(self.spans)

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if table.column("chat_username").null_count != table.num_rows:
            self.usernames = True
        chat, post = table.column("chat_id"), table.column("post_id")
        if post.null_count:
            self.monotonic = False
        keep = to_numpy(chat.is_valid())
        if not keep.any():
            return  # no chat id and no username: no key, never merged
        ids = pc.fill_null(chat, 0).to_numpy()[keep]
        posts = pc.fill_null(post, 0).to_numpy()[keep]
        for chat_id in np.unique(ids).tolist():
            mine = posts[ids == chat_id]
            self._extend(chat_id, int(mine[0]), int(mine[-1]), _direction(mine))

    def _extend(self, chat_id: int, first: int, last: int, way: int | None) -> None:
        """Rows `first`..`last` of a chat that run `way` (None: not strictly one way)."""
        span = self.spans.get(chat_id)
        if span is not None:
            step = 1 if first > span[1] else -1 if first < span[1] else None
            ways = {w for w in (span[2], step, way) if w}
            way = None if step is None or way is None or len(ways) > 1 else (ways.pop() if ways else 0)
            first = span[0]
        if way is None:
            self.monotonic = False
            way = 0
        self.spans[chat_id] = (first, last, way)

    def join(self, later: KeyCheck) -> None:
        """Add what `later` saw (rows that came after these, e.g. the next range of an input)."""
        self.usernames = self.usernames or later.usernames
        self.monotonic = self.monotonic and later.monotonic
        for chat_id, (first, last, way) in later.spans.items():
            self._extend(chat_id, first, last, way)

    def summary(self) -> dict[str, Any]:
        unique = self.monotonic and not self.usernames
        return {"chats": sorted(self.spans), "unique": unique, "usernames": self.usernames}


def _direction(posts: np.ndarray) -> int | None:
    """1 if strictly ascending, -1 if strictly descending, 0 for one id, else None."""
    if len(posts) < 2:
        return 0
    steps = np.diff(posts)
    if (steps > 0).all():
        return 1
    return -1 if (steps < 0).all() else None


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
