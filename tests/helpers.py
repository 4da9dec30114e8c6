"""Small builders shared by pipeline and CLI tests: tiny Telegram Desktop exports on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CHAT_ID = 1234567890


def message(mid: int, ts: int = 1711845005, text: Any = "hello", **extra: Any) -> dict[str, Any]:
    msg = {
        "id": mid,
        "type": "message",
        "date": "2024-03-31T02:30:05",
        "date_unixtime": str(ts),
        "from": "Example Channel",
        "from_id": f"channel{CHAT_ID}",
        "text": text,
    }
    msg.update(extra)
    return msg


def export(messages: list[Any], name: str = "Example Channel", chat_id: int = CHAT_ID) -> dict[str, Any]:
    return {"name": name, "type": "public_channel", "id": chat_id, "messages": messages}


def write_export(path: Path, messages: list[Any], **kw: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(export(messages, **kw), ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def good_messages(n: int = 30, start_ts: int = 1704067200, step: int = 86400 * 3) -> list[dict[str, Any]]:
    out = []
    for i in range(1, n + 1):
        text: Any = f"post {i}"
        if i % 3 == 0:
            text = [f"post {i} ", {"type": "hashtag", "text": "#news"}, " ", {"type": "link", "text": "example.org/x"}]
        extra: dict[str, Any] = {}
        if i % 4 == 0:
            extra["reactions"] = [{"type": "emoji", "count": i, "emoji": "👍"}]
        out.append(message(i, start_ts + i * step, text, **extra))
    return out
