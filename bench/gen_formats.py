"""Telethon JSON lines and a TGDataset file with the messages of a generated Desktop export.

For measuring the per-record formats (docs/performance.md, "Other formats"): the texts, entities,
dates and media of `gen_tdesktop.py`'s messages, written the way Telethon's `to_json()` and the
TGDataset crawler write them (formats.md §3.1, §3.5). `--replicas N` repeats the messages N
times with fresh ids, for big files without a big JSON document in memory. `--channels K` deals
the TGDataset messages into K channels in turn (a real TGDataset file holds ~1,000 channels).

    python bench/gen_formats.py bench/data/tdesktop_100000.json --replicas 10 --out bench/data
    python bench/gen_formats.py bench/data/tdesktop_100000.json --replicas 10 --channels 100
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path
from typing import Any

import orjson

TELETHON_TYPES = {
    "bold": "MessageEntityBold",
    "italic": "MessageEntityItalic",
    "link": "MessageEntityUrl",
    "text_link": "MessageEntityTextUrl",
    "hashtag": "MessageEntityHashtag",
    "mention": "MessageEntityMention",
    "code": "MessageEntityCode",
    "custom_emoji": "MessageEntityCustomEmoji",
}
MARKDOWN = {"bold": "**", "italic": "__", "code": "`"}
ID_STEP = 2_000_000


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def iso(seconds: Any) -> str:
    return datetime.datetime.fromtimestamp(int(seconds), datetime.UTC).isoformat()


def telethon(m: dict[str, Any], channel: int, post_id: int) -> dict[str, Any]:
    """A `Message.to_dict()` as `to_json()` writes it (every TL argument present)."""
    text, entities = "", []
    for part in m.get("text_entities", []):
        kind, piece = part["type"], part["text"]
        if kind in TELETHON_TYPES:
            entity: dict[str, Any] = {"_": TELETHON_TYPES[kind], "offset": utf16(text), "length": utf16(piece)}
            if kind == "text_link":
                entity["url"] = part.get("href")
            if kind == "custom_emoji":
                entity["document_id"] = int(part.get("document_id") or 1)
            entities.append(entity)
        text += piece
    flags = ("out", "mentioned", "media_unread", "silent", "from_scheduled", "legacy", "edit_hide", "pinned")
    return {
        "_": "Message",
        "id": post_id,
        "peer_id": {"_": "PeerChannel", "channel_id": channel},
        "date": iso(m["date_unixtime"]),
        "message": text,
        **dict.fromkeys(flags, False),
        "post": True,
        "noforwards": False,
        "invert_media": False,
        "offline": False,
        "from_id": None,
        "from_boosts_applied": None,
        "saved_peer_id": None,
        "fwd_from": None,
        "via_bot_id": None,
        "via_business_bot_id": None,
        "reply_to": None,
        "media": None,
        "reply_markup": None,
        "entities": entities,
        "views": 1000 + post_id % 977,
        "forwards": post_id % 13,
        "replies": None,
        "edit_date": iso(m["edited_unixtime"]) if "edited_unixtime" in m else None,
        "post_author": m.get("author"),
        "grouped_id": None,
        "reactions": None,
        "restriction_reason": [],
        "ttl_period": None,
        "quick_reply_shortcut_id": None,
        "effect": None,
        "factcheck": None,
    }


def tgdataset_entries(m: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(text entry, media entry) of one message, as the TGDataset crawler stores them."""
    text = ""
    for part in m.get("text_entities", []):
        kind, piece = part["type"], part["text"]
        if kind in MARKDOWN:
            text += MARKDOWN[kind] + piece + MARKDOWN[kind]
        elif kind == "text_link":
            text += f"[{piece}]({part.get('href')})"
        else:
            text += piece
    date = float(m["date_unixtime"])
    forwarded = "forwarded_from" in m
    has_media = "photo" in m or "file" in m
    entry = {
        "message": text,
        "date": date,
        "author": None,
        "is_forwarded": forwarded,
        "forwarded_from_id": None,
        "forwarded_message_date": date - 60 if forwarded else None,
    }
    media = None
    if has_media:
        media = {
            "title": m.get("file_name"),
            "media_id": "AgADBAAD" + str(m["id"]),
            "date": date,
            "author": None,
            "extension": ".jpg" if "photo" in m else ".mp4",
            "is_forwarded": False,
            "forwarded_from_id": None,
            "forwarded_message_date": None,
        }
    return (entry if text or not has_media else None), media


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, help="a Desktop export from gen_tdesktop.py (one chat)")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench/data"))
    parser.add_argument("--channels", type=int, default=1, help="channels of the TGDataset file")
    args = parser.parse_args(argv)
    doc = json.loads(args.export.read_bytes())
    channel, messages = doc["id"], [m for m in doc["messages"] if m.get("type") == "message"]
    args.out.mkdir(parents=True, exist_ok=True)
    count = len(messages) * args.replicas
    if args.channels > 1:
        tgdataset(args, doc, channel, messages, count)
        return
    with open(args.out / f"telethon_{count}.jsonl", "wb") as out:
        for replica in range(args.replicas):
            for m in messages:
                out.write(orjson.dumps(telethon(m, channel, m["id"] + replica * ID_STEP)) + b"\n")
    tgdataset(args, doc, channel, messages, count)
    print(f"{count} messages: telethon_{count}.jsonl")


def tgdataset(args: argparse.Namespace, doc: dict[str, Any], channel: int, messages: list, count: int) -> None:
    """The TGDataset file: the messages dealt into `args.channels` channels in turn."""
    channels = [({}, {}) for _ in range(args.channels)]
    for replica in range(args.replicas):
        for number, m in enumerate(messages):
            key = str(m["id"] + replica * ID_STEP)
            texts, media = channels[(replica * len(messages) + number) % args.channels]
            text_entry, media_entry = tgdataset_entries(m)
            if text_entry is not None:
                texts[key] = text_entry
            if media_entry is not None:
                media[key] = media_entry
    root = {}
    for k, (texts, media) in enumerate(channels):
        root[str(channel + k)] = {
            "creation_date": 1451616704.0,
            "username": "benchchannel" if args.channels == 1 else f"benchchannel{k}",
            "title": doc["name"],
            "description": "",
            "scam": False,
            "verified": False,
            "n_subscribers": 12345,
            "text_messages": texts,
            "generic_media": media,
        }
    name = f"tgdataset_{count}.json" if args.channels == 1 else f"tgdataset_{count}_c{args.channels}.json"
    (args.out / name).write_bytes(orjson.dumps(root))
    texts_total = sum(len(t) for t, _ in channels)
    print(f"{count} messages: {name} ({texts_total} text, {sum(len(m) for _, m in channels)} media)")


if __name__ == "__main__":
    main()
