"""Coverage of a dataset: per chat id ranges and gaps, date spans, posts per month, null rates.

Reads the data files one at a time (bounded memory: per chat only its post ids are kept, as
int64 arrays), and the manifest for quarantine counts. Everything per row is Arrow compute or
numpy: a 5M-row dataset takes seconds and ~100 MB, not a Python object per row. Used by
`tgexport stats` and at the end of `tgexport convert`.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import UsageError
from .executors import default_jobs
from .manifest import MANIFEST
from .merge import read_data_file
from .normalize import iso_utc
from .schema import arrow_schema

TOP_GAPS = 10
READ_AHEAD = 4  # threads reading data files for the report
GROUP_TYPES = ("group", "supergroup")


@dataclass
class ChatCoverage:
    key: str
    titles: Counter = field(default_factory=Counter)
    chat_type: str | None = None
    posts: int = 0
    service: int = 0
    ids: list[pa.Array] = field(default_factory=list)
    first_date: Any = None
    last_date: Any = None
    months: Counter = field(default_factory=Counter)
    nulls: Counter = field(default_factory=Counter)
    formats: Counter = field(default_factory=Counter)
    left_chat: bool = False
    full_account: bool = False
    user_senders: set = field(default_factory=set)

    def add(self, table: pa.Table) -> None:
        self.posts += table.num_rows
        self.service += pc.sum(pc.equal(table.column("kind"), "service")).as_py() or 0
        self.ids.append(table.column("post_id").combine_chunks())
        for title in table.column("chat_title").drop_null().unique().to_pylist():
            self.titles[title] += 1
        types = table.column("chat_type").drop_null().unique().to_pylist()
        self.chat_type = self.chat_type or (types[0] if types else None)
        dates = table.column("date")
        low, high = pc.min(dates).as_py(), pc.max(dates).as_py()
        if low is not None:
            self.first_date = low if self.first_date is None else min(self.first_date, low)
            self.last_date = high if self.last_date is None else max(self.last_date, high)
        self._months(table)
        for name in table.column_names:
            self.nulls[name] += table.column(name).null_count
        self.formats.update(_value_counts(table.column("source_format")))
        self._senders(table)

    def _months(self, table: pa.Table) -> None:
        dates = table.column("date")
        stamps = pc.add(pc.multiply(pc.year(dates), 100), pc.month(dates))
        for stamp, count in _value_counts(stamps).items():
            self.months["(no date)" if stamp is None else f"{stamp // 100:04d}-{stamp % 100:02d}"] += count

    def _senders(self, table: pa.Table) -> None:
        locators = table.column("source_locator")
        if pc.any(pc.starts_with(locators, "/left_chats/")).as_py():
            self.left_chat = True
        if pc.any(pc.starts_with(locators, "/chats/list/")).as_py():
            self.full_account = True
        senders = table.column("sender_id").filter(pc.equal(table.column("kind"), "message"))
        for sender in senders.drop_null().unique().to_pylist():
            if sender.startswith("user") and len(self.user_senders) < 3:
                self.user_senders.add(sender)

    def report(self) -> dict[str, Any]:
        ids = pc.unique(pa.concat_arrays(self.ids)).sort() if self.ids else pa.array([], pa.int64())
        return {
            "chat": self.key,
            "title": self.titles.most_common(1)[0][0] if self.titles else None,
            "chat_type": self.chat_type,
            "posts": self.posts,
            "distinct_ids": len(ids),
            **_gaps(ids),
            "first_date": iso_utc(self.first_date) if self.first_date else None,
            "last_date": iso_utc(self.last_date) if self.last_date else None,
            "posts_per_month": dict(sorted(self.months.items())),
            "service_share": round(self.service / self.posts, 4) if self.posts else 0.0,
            "null_share": {k: round(v / self.posts, 4) for k, v in sorted(self.nulls.items()) if v},
            "formats": dict(sorted(self.formats.items())),
            "warnings": self.warnings(),
        }

    def warnings(self) -> list[str]:
        out = []
        if self.left_chat:
            out.append(
                "left chat in a full-account Telegram Desktop export: it holds only the exporter's own "
                "messages (formats.md §1.1)"
            )
        elif self.full_account and self.chat_type in GROUP_TYPES and len(self.user_senders) == 1 and self.posts > 1:
            out.append(
                "every message has the same sender: a full-account export holds only the exporter's own "
                "messages for chat types not ticked for full export"
            )
        return out


def _value_counts(column: Any) -> dict[Any, int]:
    counts = pc.value_counts(column)
    return dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))


def _gaps(ids: pa.Array) -> dict[str, Any]:
    """Id range, missing ids and the largest gaps of sorted distinct ids (numpy: no list per id)."""
    positive = ids.filter(pc.greater(ids, 0)) if len(ids) else ids
    if len(positive) == 0:
        return {
            "min_id": None,
            "max_id": None,
            "missing_ids": 0,
            "missing_share": 0.0,
            "gap_count": 0,
            "largest_gaps": [],
        }
    values = positive.to_numpy()
    low, high = int(values[0]), int(values[-1])
    span = high - low + 1
    step = np.diff(values)
    at = np.flatnonzero(step > 1)
    sizes, starts = step[at] - 1, values[at] + 1
    top = np.lexsort((starts, -sizes))[:TOP_GAPS]  # largest first, then lowest start
    missing = span - len(values)
    return {
        "min_id": low,
        "max_id": high,
        "missing_ids": missing,
        "missing_share": round(missing / span, 4),
        "gap_count": len(at),
        "largest_gaps": [
            {"from": int(starts[i]), "to": int(starts[i] + sizes[i] - 1), "missing": int(sizes[i])} for i in top
        ],
    }


def _chat_key(chat_id: Any, username: Any, title: Any) -> str:
    """Username, else `c<id>`, else the title (HTML exports know no id), else unknown."""
    if username:
        return username
    if chat_id is not None:
        return f"c{chat_id}"
    return f"title:{title}" if title else "(unknown chat)"


def _split_by_chat(table: pa.Table, usernames: dict[Any, str]) -> list[tuple[str, pa.Table]]:
    """The rows of `table` per chat key, keys in sorted order (the key is decided per distinct
    (chat_id, chat_username, chat_title), not per row)."""
    # id and username (digits; [a-z0-9_:]) cannot hold the separator; the title comes last, whole.
    # Null is "", a value is "=" + value, so an empty string stays distinct from null.
    names = ("chat_id", "chat_username", "chat_title")
    if table.num_rows and all(pc.count_distinct(table.column(n), mode="all").as_py() == 1 for n in names):
        chat_id, name, title = (table.column(n)[0].as_py() for n in names)  # one chat: no key per row
        return [(_chat_key(chat_id, name or usernames.get(chat_id), title), table)]
    columns = [pc.cast(table.column("chat_id"), pa.string()), table.column("chat_username"), table.column("chat_title")]
    parts = [pc.if_else(pc.is_valid(c), pc.binary_join_element_wise("=", c, ""), "") for c in columns]
    combos = pc.binary_join_element_wise(*parts, "\x01").combine_chunks().dictionary_encode()
    keys = []
    for combo in combos.dictionary.to_pylist():
        raw_id, name, title = (v[1:] if v else None for v in combo.split("\x01", 2))
        chat_id = None if raw_id is None else int(raw_id)
        keys.append(_chat_key(chat_id, name or usernames.get(chat_id), title))
    if len(set(keys)) == 1:
        return [(keys[0], table)]
    row_keys = pa.array(keys, pa.string()).take(combos.indices)
    return [(key, table.filter(pc.equal(row_keys, key))) for key in sorted(set(keys))]


# What `ChatCoverage` reads besides the nullable columns (whose null shares it reports).
REPORT_COLUMNS = (
    "post_id",
    "chat_id",
    "chat_username",
    "chat_title",
    "chat_type",
    "date",
    "kind",
    "sender_id",
    "source_format",
    "source_locator",
)


@cache
def report_columns() -> list[str]:
    """The columns a report reads: a value of the others is never null (the schema says so), and
    they hold most of the bytes (text, entities, sources): skipping them halves the read."""
    return [f.name for f in arrow_schema() if f.nullable or f.name in REPORT_COLUMNS]


def _read_ahead(paths: list[Path], columns: list[str]) -> Iterator[pa.Table]:
    """The files' tables in order, the next few read meanwhile on threads (pyarrow decodes
    without the GIL; per file the cost is mostly fixed, ~0.25 ms per column chunk). At most
    `workers + 1` tables are held at once."""
    workers = min(READ_AHEAD, default_jobs(), len(paths))
    if workers < 2:
        yield from (read_data_file(path, columns) for path in paths)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="tgexport-coverage") as pool:
        pending: deque[Future] = deque()
        for path in paths:
            pending.append(pool.submit(read_data_file, path, columns))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def coverage(root: Path) -> dict[str, Any]:
    """The coverage report of the dataset at `root`, as plain data."""
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise UsageError(f"{root} is not a tgexport dataset (no {MANIFEST})", hint="point at a dataset folder")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    chats: dict[str, ChatCoverage] = {}
    usernames: dict[Any, str] = {}
    for table in _read_ahead([root / entry["path"] for entry in manifest["files"]], report_columns()):
        pairs = table.select(["chat_id", "chat_username"]).filter(pc.is_valid(table.column("chat_username")))
        # (no group_by without rows: it loads Acero, and pyarrow.dataset with it, ~0.25 s)
        for row in pairs.group_by(["chat_id", "chat_username"]).aggregate([]).to_pylist() if pairs.num_rows else ():
            if row["chat_id"] is not None:
                usernames[row["chat_id"]] = row["chat_username"]
        for key, rows in _split_by_chat(table, usernames):
            chats.setdefault(key, ChatCoverage(key)).add(rows)
    quarantined: Counter = Counter()
    for item in manifest["inputs"]:
        quarantined.update(item.get("quarantined_by_reason", {}))
    reports = [chats[k].report() for k in sorted(chats)]
    return {
        "dataset": str(root),
        "run_id": manifest["run_id"],
        "rows": sum(r["posts"] for r in reports),
        "chats": reports,
        "quarantined": sum(i["items"]["quarantined"] for i in manifest["inputs"]),
        "quarantined_by_reason": dict(sorted(quarantined.items())),
        "warnings": [f"{r['chat']}: {w}" for r in reports for w in r["warnings"]],
    }
