"""Merge records of the same post from different dumps (and exact duplicates within one).

Runs after every task has written its files. Duplicates are found on the canonical record key
(chat id where known — joined through usernames that some source pairs with an id — else the
username; plus the post id) bucket by bucket, so memory stays bounded by one bucket of keys and
its duplicate groups, never the dataset. Affected files are rewritten in place under their own
names; the rest are not touched.

Precedence (documented in docs/merging.md):
* the *primary* record (it keeps its file, partition and `source_*` fields) is the one with the
  best date: exact UTC sources first, then local-time ones (Desktop HTML), then undated (mirror);
* text, entities, hashtags, mentions, urls, content_omitted: the richest text (not omitted, then
  most entities, then longest text);
* views/forwards/replies: exact over rounded, then the highest (counters only grow);
* reactions: exact over rounded, then the highest total; edit_date: the most recent edit;
* every other field: the first non-null value, primary first, then by format rank;
* `sources`: the union of every contributing item, sorted.
"""

from __future__ import annotations

import math
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from .arrowbuild import records_to_table, sort_table
from .normalize import iso_utc, post_url
from .writers.jsonl import read_jsonl

FORMAT_RANK = {
    "telethon-json": 0,
    "tdesktop-json": 1,
    "tgdataset": 2,
    "tme-html": 3,
    "snscrape-jsonl": 4,
    "tdesktop-html": 5,
    "mirror": 6,
}
DATE_RANK = {"tdesktop-html": 1, "mirror": 2}  # others carry exact UTC instants
BUCKET_ROWS = 100_000  # keys of this many rows per pass
GROUP_CHUNK = 5_000  # duplicate groups whose full rows are held at once
KEY_COLUMNS = ["post_id", "chat_id", "chat_username"]
TEXT_FIELDS = ("text", "entities", "hashtags", "mentions", "urls", "content_omitted")
COUNT_FIELDS = ("views", "forwards", "replies")
SPECIAL = {
    "sources",
    "source_format",
    "source_file",
    "source_sha256",
    "source_locator",
    "run_id",
    "url",
    "edit_date",
    "is_edited",
    "counts_rounded",
    "reactions",
    "reactions_total",
    *TEXT_FIELDS,
    *COUNT_FIELDS,
}


@dataclass
class MergeOutcome:
    merged_by_input: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rewritten: list[str] = field(default_factory=list)  # relative paths of rewritten files
    emptied: list[str] = field(default_factory=list)  # relative paths of files left with no rows


def read_data_file(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A data file as a table of the data schema (Parquet or JSONL)."""
    if path.name.endswith(".parquet"):
        with pq.ParquetFile(path) as data:  # not read_table: no dataset discovery per file (~1.5 ms)
            return data.read(columns=columns)
    table = records_to_table(read_jsonl(path))
    return table.select(columns) if columns else table


def merge_files(
    files: list[Path],
    total_rows: int,
    run_id: str,
    rewrite: Callable[[int, pa.Table], None],
    keep_chat: bool = False,
    work: Path | None = None,
) -> MergeOutcome:
    """Find and merge duplicates among the data `files` (holding `total_rows` rows in all).

    `rewrite(index, table)` is called once per affected file with its new contents (possibly
    empty). With `keep_chat` (chat partitioning) the primary's chat fields stay as they are, so
    a merged row never changes partition. Patches are spilled to `work` (a temporary folder by
    default), so memory holds at most one chunk of duplicate groups.
    """
    outcome = MergeOutcome()
    if total_rows < 2:
        return outcome
    with tempfile.TemporaryDirectory(dir=work, prefix=".merge-") as folder:
        patches = _Patches(Path(folder))
        usernames = _identity_map(files)
        buckets = max(1, math.ceil(total_rows / BUCKET_ROWS))
        for bucket in range(buckets):
            groups = _duplicate_groups(_canonical(_key_table(files, bucket, buckets), usernames))
            for start in range(0, len(groups), GROUP_CHUNK):
                chunk = groups[start : start + GROUP_CHUNK]
                _merge_chunk(files, chunk, {} if keep_chat else usernames, run_id, keep_chat, patches, outcome)
                patches.flush()  # hold at most one chunk of merged records in memory
        fillable = set() if keep_chat else _fillable_files(files, usernames)
        for index in sorted(patches.files() | fillable):
            drops, replacements = patches.load(index)
            new = _apply(read_data_file(files[index]), drops, replacements)
            if index in fillable:
                new = _fill_chat_ids(new, usernames)
            rewrite(index, new)
            (outcome.emptied if new.num_rows == 0 else outcome.rewritten).append(index)
    return outcome


def _merge_chunk(
    files: list[Path],
    groups: list[list[tuple[int, int]]],
    usernames: dict[str, int],
    run_id: str,
    keep_chat: bool,
    patches: _Patches,
    outcome: MergeOutcome,
) -> None:
    rows = _fetch_rows(files, groups)
    for group in groups:
        records = [rows[member] for member in group]
        merged, primary = merge_records(records, usernames, run_id, keep_chat)
        for position, (fidx, ridx) in enumerate(group):
            if position == primary:
                patches.replace(fidx, ridx, merged)
            else:
                patches.drop(fidx, ridx)
                outcome.merged_by_input[records[position]["source_sha256"]] += 1


class _Patches:
    """Per-file row drops and replacement records, spilled to Arrow IPC files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._drops: dict[int, list[int]] = defaultdict(list)
        self._rows: dict[int, list[int]] = defaultdict(list)
        self._records: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self._spilled: dict[int, list[Path]] = defaultdict(list)
        self._count = 0

    def drop(self, fidx: int, ridx: int) -> None:
        self._drops[fidx].append(ridx)

    def replace(self, fidx: int, ridx: int, record: dict[str, Any]) -> None:
        self._rows[fidx].append(ridx)
        self._records[fidx].append(record)

    def flush(self) -> None:
        for fidx in sorted(set(self._drops) | set(self._rows)):
            table = records_to_table(self._records[fidx]) if self._records[fidx] else None
            rows = pa.array(self._rows[fidx] + self._drops[fidx], pa.int64())
            kinds = pa.array([True] * len(self._rows[fidx]) + [False] * len(self._drops[fidx]))
            path = self.folder / f"{self._count:08d}.arrow"
            self._count += 1
            patch = pa.table({"__row": rows, "__replace": kinds})
            with ipc.new_file(path, patch.schema) as writer:
                writer.write_table(patch)
            self._spilled[fidx].append(path)
            if table is not None:
                with ipc.new_file(path.with_suffix(".rows"), table.schema) as writer:
                    writer.write_table(table)
        self._drops.clear()
        self._rows.clear()
        self._records.clear()

    def files(self) -> set[int]:
        return set(self._spilled)

    def load(self, fidx: int) -> tuple[set[int], pa.Table | None]:
        """Rows to remove from file `fidx` (dropped or replaced) and the replacement records."""
        remove: set[int] = set()
        tables = []
        for path in self._spilled.get(fidx, []):
            remove.update(_read_ipc(path).column("__row").to_pylist())
            if path.with_suffix(".rows").exists():
                tables.append(_read_ipc(path.with_suffix(".rows")))
        return remove, (pa.concat_tables(tables) if tables else None)


def _read_ipc(path: Path) -> pa.Table:
    with pa.OSFile(str(path)) as source:
        return ipc.open_file(source).read_all()


def _fillable_files(files: list[Path], usernames: dict[str, int]) -> set[int]:
    """Files with rows that know their chat only by a username another source pairs with an id."""
    if not usernames:
        return set()
    known = pa.array(sorted(usernames), pa.string())
    found = set()
    for index, path in enumerate(files):
        keys = read_data_file(path, ["chat_id", "chat_username"])
        mask = pc.and_(pc.is_null(keys.column("chat_id")), pc.is_in(keys.column("chat_username"), known))
        if pc.any(mask).as_py():
            found.add(index)
    return found


def _fill_chat_ids(table: pa.Table, usernames: dict[str, int]) -> pa.Table:
    """Join username-only rows to their chat id (url, partition and sort keys stay valid)."""
    ids = table.column("chat_id").to_pylist()
    names = table.column("chat_username").to_pylist()
    filled = [cid if cid is not None else usernames.get(name) for cid, name in zip(ids, names, strict=True)]
    index = table.schema.get_field_index("chat_id")
    table = table.set_column(index, table.schema.field(index), pa.array(filled, pa.int64()))
    return sort_table(table)


def _key_table(files: list[Path], bucket: int, buckets: int) -> pa.Table:
    """Key columns of the rows whose post id falls in `bucket`, with file and row indexes."""
    tables = []
    for index, path in enumerate(files):
        keys = read_data_file(path, KEY_COLUMNS)
        keys = keys.append_column("__file", pa.array([index] * keys.num_rows, pa.int32()))
        keys = keys.append_column("__row", pa.array(range(keys.num_rows), pa.int64()))
        if buckets > 1:
            masked = pc.bit_wise_and(keys.column("post_id"), 0x7FFFFFFF)
            keys = keys.filter(pc.equal(pc.subtract(masked, pc.multiply(pc.divide(masked, buckets), buckets)), bucket))
        tables.append(keys)
    return pa.concat_tables(tables)


def _identity_map(files: list[Path]) -> dict[str, int]:
    """username -> chat id, from records that carry both (the smallest id wins a conflict)."""
    found: dict[str, int] = {}
    for relpath in files:
        pairs = read_data_file(relpath, ["chat_username", "chat_id"])
        pairs = pairs.filter(pc.and_(pc.is_valid(pairs.column("chat_username")), pc.is_valid(pairs.column("chat_id"))))
        for row in pairs.group_by(["chat_username", "chat_id"]).aggregate([]).to_pylist():
            name, chat = row["chat_username"], row["chat_id"]
            found[name] = min(chat, found.get(name, chat))
    return found


def _canonical(keys: pa.Table, usernames: dict[str, int]) -> pa.Table:
    """Add `__chat`: the chat id, or the id known for the username, or the username itself."""
    names = keys.column("chat_username").to_pylist()
    ids = keys.column("chat_id").to_pylist()
    chat = [
        f"i{cid}" if cid is not None else (f"i{usernames[n]}" if n in usernames else (f"u{n}" if n else None))
        for cid, n in zip(ids, names, strict=True)
    ]
    return keys.append_column("__chat", pa.array(chat, pa.string()))


def _duplicate_groups(keys: pa.Table) -> list[list[tuple[int, int]]]:
    """Groups of (file index, row index) sharing a canonical key, in a deterministic order."""
    known = keys.filter(pc.is_valid(keys.column("__chat")))
    counts = known.group_by(["__chat", "post_id"]).aggregate([("__row", "count")])
    dup = counts.filter(pc.greater(counts.column("__row_count"), 1)).select(["__chat", "post_id"])
    if dup.num_rows == 0:
        return []
    rows = known.join(dup, ["__chat", "post_id"], join_type="inner")
    rows = rows.sort_by(
        [("__chat", "ascending"), ("post_id", "ascending"), ("__file", "ascending"), ("__row", "ascending")]
    )
    groups: dict[tuple, list[tuple[int, int]]] = {}
    for chat, post, fidx, ridx in zip(
        *(rows.column(c).to_pylist() for c in ("__chat", "post_id", "__file", "__row")), strict=True
    ):
        groups.setdefault((chat, post), []).append((fidx, ridx))
    return list(groups.values())


def _fetch_rows(files: list[Path], groups: list[list[tuple[int, int]]]) -> dict[tuple, dict]:
    """The full records of every row in `groups`, reading each file once."""
    wanted: dict[int, list[int]] = defaultdict(list)
    for group in groups:
        for fidx, ridx in group:
            wanted[fidx].append(ridx)
    rows: dict[tuple, dict] = {}
    for fidx, indices in sorted(wanted.items()):
        indices = sorted(set(indices))
        taken = read_data_file(files[fidx]).take(pa.array(indices, pa.int64()))
        for ridx, row in zip(indices, taken.to_pylist(), strict=True):
            rows[(fidx, ridx)] = _as_record(row)
    return rows


def _as_record(row: dict[str, Any]) -> dict[str, Any]:
    """A row read back from Arrow -> the record form (RFC 3339 strings for timestamps)."""
    for name, value in row.items():
        if isinstance(value, datetime):
            row[name] = iso_utc(value)
    return row


def _rank(record: dict[str, Any]) -> int:
    return FORMAT_RANK.get(record["source_format"], 99)


def merge_records(
    records: list[dict[str, Any]],
    usernames: dict[str, int] | None = None,
    run_id: str | None = None,
    keep_chat: bool = False,
) -> tuple[dict[str, Any], int]:
    """Merge records of one post; return the merged record and the index of the primary."""
    usernames = usernames or {}
    order = sorted(
        range(len(records)),
        key=lambda i: (
            records[i]["date"] is None,
            DATE_RANK.get(records[i]["source_format"], 0),
            _rank(records[i]),
            records[i]["source_sha256"],
            records[i]["source_locator"],
        ),
    )
    primary = order[0]
    ranked = [records[i] for i in order]
    merged = dict(ranked[0])
    for name in merged:
        if keep_chat and name in ("chat_id", "chat_username"):
            continue
        if name not in SPECIAL and merged[name] is None:
            merged[name] = next((r[name] for r in ranked if r[name] is not None), None)
    if merged["chat_id"] is None and merged["chat_username"] in usernames:
        merged["chat_id"] = usernames[merged["chat_username"]]
    richest = min(
        ranked, key=lambda r: (bool(r["content_omitted"]), -len(r["entities"] or []), -len(r["text"]), _rank(r))
    )
    for name in TEXT_FIELDS:
        merged[name] = richest[name]
    _merge_counts(merged, ranked)
    edits = [r["edit_date"] for r in ranked if r["edit_date"] is not None]
    merged["edit_date"] = max(edits) if edits else None
    flags = [r["is_edited"] for r in ranked if r["is_edited"] is not None]
    merged["is_edited"] = True if merged["edit_date"] or any(flags) else (False if flags else None)
    merged["url"] = post_url(merged["chat_username"], merged["chat_id"], merged["chat_type"], merged["post_id"])
    merged["sources"] = _union_sources(records)
    if run_id:
        merged["run_id"] = run_id
    return merged, primary


def _count_key(record: dict[str, Any], value: int) -> tuple:
    return (bool(record["counts_rounded"]), -value)


def _merge_counts(merged: dict[str, Any], ranked: list[dict[str, Any]]) -> None:
    rounded = False
    for name in COUNT_FIELDS:
        candidates = [(r, r[name]) for r in ranked if r[name] is not None]
        if candidates:
            record, value = min(candidates, key=lambda c: _count_key(*c))
            merged[name] = value
            rounded = rounded or bool(record["counts_rounded"])
        else:
            merged[name] = None
    with_reactions = [r for r in ranked if r["reactions_total"] is not None]
    if with_reactions:
        best = min(with_reactions, key=lambda r: _count_key(r, r["reactions_total"]))
        merged["reactions"], merged["reactions_total"] = best["reactions"], best["reactions_total"]
        rounded = rounded or bool(best["counts_rounded"])
    else:
        merged["reactions"], merged["reactions_total"] = ranked[0]["reactions"], None
    merged["counts_rounded"] = rounded


def _union_sources(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    seen: dict[tuple, dict[str, str]] = {}
    for record in records:
        for source in record.get("sources") or []:
            seen[(source["format"], source["file"], source["locator"], source["sha256"])] = source
    return [seen[k] for k in sorted(seen)]


def _apply(table: pa.Table, remove: set[int], replacements: pa.Table | None) -> pa.Table:
    """Drop merged-away and replaced rows, add the merged records, re-sort stably."""
    keep = pc.invert(pc.is_in(pa.array(range(table.num_rows), pa.int64()), pa.array(sorted(remove), pa.int64())))
    kept = table.filter(keep)
    if replacements is not None:
        kept = pa.concat_tables([kept, replacements.cast(kept.schema)])
    return sort_table(kept)
