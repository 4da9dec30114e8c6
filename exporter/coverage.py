"""Coverage of a dataset: per chat id ranges and gaps, date spans, posts per month, null rates.

Reads the data files one at a time (bounded memory: per chat only the sorted post ids are
kept), and the manifest for quarantine counts. Used by `tgexport stats` and at the end of
`tgexport convert`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .errors import UsageError
from .manifest import MANIFEST
from .merge import read_data_file
from .normalize import iso_utc

TOP_GAPS = 10
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
        for fmt, count in Counter(table.column("source_format").to_pylist()).items():
            self.formats[fmt] += count
        self._senders(table)

    def _months(self, table: pa.Table) -> None:
        dates = table.column("date")
        keys = pc.strftime(dates, format="%Y-%m").fill_null("(no date)")
        for month, count in Counter(keys.to_pylist()).items():
            self.months[month] += count

    def _senders(self, table: pa.Table) -> None:
        locators = table.column("source_locator")
        if pc.any(pc.starts_with(locators, "/left_chats/")).as_py():
            self.left_chat = True
        if pc.any(pc.starts_with(locators, "/chats/list/")).as_py():
            self.full_account = True
        messages = table.filter(pc.equal(table.column("kind"), "message"))
        for sender in messages.column("sender_id").drop_null().unique().to_pylist():
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


def _gaps(ids: pa.Array) -> dict[str, Any]:
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
    values = positive.to_pylist()
    low, high = values[0], values[-1]
    span = high - low + 1
    gaps = [(b - a - 1, a + 1, b - 1) for a, b in zip(values, values[1:], strict=False) if b - a > 1]
    gaps.sort(key=lambda g: (-g[0], g[1]))
    missing = span - len(values)
    return {
        "min_id": low,
        "max_id": high,
        "missing_ids": missing,
        "missing_share": round(missing / span, 4),
        "gap_count": len(gaps),
        "largest_gaps": [{"from": a, "to": b, "missing": n} for n, a, b in gaps[:TOP_GAPS]],
    }


def _chat_key(chat_id: Any, username: Any, title: Any) -> str:
    """Username, else `c<id>`, else the title (HTML exports know no id), else unknown."""
    if username:
        return username
    if chat_id is not None:
        return f"c{chat_id}"
    return f"title:{title}" if title else "(unknown chat)"


def coverage(root: Path) -> dict[str, Any]:
    """The coverage report of the dataset at `root`, as plain data."""
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise UsageError(f"{root} is not a tgexport dataset (no {MANIFEST})", hint="point at a dataset folder")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    chats: dict[str, ChatCoverage] = {}
    usernames: dict[Any, str] = {}
    for entry in manifest["files"]:
        table = read_data_file(root / entry["path"])
        pairs = table.select(["chat_id", "chat_username"]).filter(pc.is_valid(table.column("chat_username")))
        for row in pairs.group_by(["chat_id", "chat_username"]).aggregate([]).to_pylist():
            if row["chat_id"] is not None:
                usernames[row["chat_id"]] = row["chat_username"]
        keys = [
            _chat_key(cid, name or usernames.get(cid), title)
            for cid, name, title in zip(
                table.column("chat_id").to_pylist(),
                table.column("chat_username").to_pylist(),
                table.column("chat_title").to_pylist(),
                strict=True,
            )
        ]
        key_array = pa.array(keys, pa.string())
        for key in sorted(set(keys)):
            chats.setdefault(key, ChatCoverage(key)).add(table.filter(pc.equal(key_array, key)))
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
