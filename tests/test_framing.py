"""Byte-level framing of tdesktop JSON (exporter.framing) and splitting into ranges (exporter.splitting)."""

from __future__ import annotations

import io
import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.framing import (
    UNPARSED_KEYS,
    DocumentFramer,
    LayoutError,
    RangeFramer,
    RepairingReader,
    frame_region,
)
from exporter.jsonstream import EscapeFixingReader
from exporter.splitting import SegmentReader, plan


def message(i: int, text: str = "hi", **extra: Any) -> dict[str, Any]:
    msg = {"id": i, "type": "message", "date_unixtime": str(1_700_000_000 + i), "text": text}
    msg["text_entities"] = [{"type": "plain", "text": text}] if text else []
    msg.update(extra)
    return msg


def chat(messages: list[dict[str, Any]], **meta: Any) -> dict[str, Any]:
    return {"name": "C", "type": "public_channel", "id": 77, **meta, "messages": messages}


def layout(doc: Any) -> bytes:
    """Telegram Desktop's layout: one space per level, raw UTF-8."""
    return json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8")


def account(chats: list[dict[str, Any]], left: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"about": "x", "personal_information": {"user_id": 1}, "chats": {"about": "y", "list": chats}}
    if left is not None:
        doc["left_chats"] = {"about": "z", "list": left}
    return doc


def framed(data: bytes, batch_bytes: int = 1 << 12) -> list[tuple[str, Any, int, list[Any]]]:
    """(pointer, name, index, parsed message) for every framed message."""
    out = []
    for batch in DocumentFramer(io.BytesIO(data), batch_bytes).batches():
        batch.repair()  # `\xHH` escapes are rewritten per batch, when a batch holds one
        for i in range(batch.count):
            out.append((batch.chat.pointer, batch.chat.name, batch.first_index + i, json.loads(batch.message(i))))
    return out


def walked(doc: dict[str, Any]) -> list[tuple[str, Any, int, Any]]:
    """What the per-record converter reads: every chat's messages with pointer and index."""
    if "messages" in doc:
        return [("", doc.get("name"), i, m) for i, m in enumerate(doc["messages"])]
    out = []
    for section in ("chats", "left_chats"):
        for c, entry in enumerate(doc.get(section, {}).get("list", [])):
            out += [(f"/{section}/list/{c}", entry.get("name"), i, m) for i, m in enumerate(entry["messages"])]
    return out


# --- framing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_bytes", [1, 200, 1 << 12, 1 << 20])
def test_single_chat_messages_framed_in_order(batch_bytes: int) -> None:
    doc = chat([message(i, "текст 🎉 " * (i % 7)) for i in range(1, 60)])
    assert framed(layout(doc), batch_bytes) == walked(doc)


def test_account_export_chats_pointers_and_metadata() -> None:
    chats = [chat([message(i) for i in range(n)], name=f"chat {n}", id=100 + n) for n in (3, 0, 5)]
    doc = account(chats, left=[chat([message(9)], name="left")])
    got = framed(layout(doc))
    assert got == walked(doc)
    assert {p for p, *_ in got} == {"/chats/list/0", "/chats/list/2", "/left_chats/list/0"}


def test_chat_metadata_is_what_precedes_the_array() -> None:
    data = layout({"messages": [message(1)], "name": "late"})
    batch = next(DocumentFramer(io.BytesIO(data)).batches())
    assert batch.chat.name is None  # the per-record converter has not seen `name` yet either


def test_bom_and_bad_escapes_are_repaired_like_the_per_record_reader() -> None:
    data = b"\xef\xbb\xbf" + layout(chat([message(1, "a\\x07b")], name="x\\x41")).replace(b"\\\\x", b"\\x")
    (got,) = framed(data)
    assert got[1] == "xA" and got[3]["text"] == "a\x07b"


@pytest.mark.parametrize(
    "doc_bytes",
    [
        json.dumps(chat([message(1), message(2)])).encode(),  # compact: no layout at all
        layout(chat([message(1), message(2)])).replace(b"\n", b"\r\n"),  # CRLF
        layout(chat([message(1), "a string"])),  # a non-object message
        layout(chat([message(1), message(2)])).replace(b"\n  },\n  {", b"\n  }, {"),  # odd separators
    ],
)
def test_documents_off_the_layout_raise_layout_error(doc_bytes: bytes) -> None:
    with pytest.raises(LayoutError):
        framed(doc_bytes)


def test_empty_messages_arrays_and_no_chats() -> None:
    assert framed(layout(chat([]))) == []
    assert framed(layout(account([chat([], name="a"), chat([message(1)], name="b")]))) == [
        ("/chats/list/1", "b", 0, message(1))
    ]
    with pytest.raises(LayoutError):
        framed(layout({"about": "x"}))  # not an export: the per-record path reports it


def test_truncated_document_raises_layout_error() -> None:
    data = layout(chat([message(i) for i in range(20)]))
    with pytest.raises(LayoutError):
        framed(data[: len(data) // 2])


def test_frame_region_counts_key_lines_and_unparsed_keys() -> None:
    dated = message(2, extra="x", date="2023-11-14T22:13:21")
    region = layout([message(1), dated])[1:-2]
    padded = bytearray(region) + bytes(8)
    frames = frame_region(padded, len(region), 1)
    assert frames.count == 2 and not frames.array_ended
    assert frames.keys.tolist() == [len(message(1)), len(dated)]
    # `text` and `date` at message level; not the parts' nested "text" keys
    assert frames.unparsed.tolist() == [1, 2]


def test_key_census_matches_unparsed_keys_exactly() -> None:
    """Long keys are matched 8 bytes at a time, whole, and never past the end of their line."""
    counted = {k: 1 for k in UNPARSED_KEYS if k not in ("text", "date")}
    near_misses = {"thumbnail_x": 1, "thumbnail_file_siz": 1, "title2": 1, "titl": 1, "via_bot_id": "x", "self_de": 1}
    region = layout([message(1, **counted), message(2, **near_misses), message(3, self_de=1)])[1:-2]
    padded = bytearray(region) + bytes(8)
    frames = frame_region(padded, len(region), 1)
    assert frames.keys.tolist() == [len(message(1, **counted)), len(message(2, **near_misses)), len(message(3)) + 1]
    assert frames.unparsed.tolist() == [1 + len(counted), 1, 1]


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(1, 40), max_size=20))
def test_repairing_reader_matches_escape_fixing_reader(noise: bytes, sizes: list[int]) -> None:
    data = noise.replace(b"\n", b"") + b"\\x41\\\\x42\\\\\\x4a" + noise

    class Chunks(io.RawIOBase):
        def __init__(self) -> None:
            self.data, self.sizes = data, list(sizes)

        def read(self, size: int = -1) -> bytes:
            step = self.sizes.pop(0) if self.sizes else size
            out, self.data = self.data[:step], self.data[step:]
            return out

    want = EscapeFixingReader(io.BytesIO(data)).read()
    reader, got = RepairingReader(Chunks()), b""
    while chunk := reader.read(64):
        got += chunk
    assert got == want


# --- splitting -------------------------------------------------------------------------------------


def split_outcome(data: bytes, path: Any, chunk: int) -> list[tuple[str, Any, int, Any]]:
    path.write_bytes(data)
    out = []
    with open(path, "rb") as planner_stream:
        ranges = list(plan(planner_stream, chunk))
    assert len(ranges) > 1
    with open(path, "rb") as raw:
        for part in ranges:
            for segment in part.segments:
                framer = RangeFramer(SegmentReader(raw, segment), segment.chat, segment.pad, segment.first_index, 512)
                for batch in framer.batches():
                    batch.repair()
                    for i in range(batch.count):
                        out.append(
                            (batch.chat.pointer, batch.chat.name, batch.first_index + i, json.loads(batch.message(i)))
                        )
    return out


def test_ranges_hold_every_message_once_with_exact_indices(tmp_path) -> None:
    rng = random.Random(5)
    doc = chat([message(i, "слово " * rng.randint(0, 30), from_id="channel77") for i in range(400)])
    assert split_outcome(layout(doc), tmp_path / "a.json", 2000) == walked(doc)


def test_ranges_across_account_chats(tmp_path) -> None:
    chats = [
        chat([message(i, "x" * (i % 50), from_id="user1") for i in range(n)], name=f"c{n}") for n in (50, 0, 3, 120)
    ]
    doc = account(chats, left=[chat([message(1, from_id="user2")], name="gone")])
    assert split_outcome(layout(doc), tmp_path / "b.json", 1500) == walked(doc)


def test_no_cut_where_the_id_era_is_unknown(tmp_path) -> None:
    """Messages that do not show the id era (no from_id, no date_unixtime) cannot start a range."""
    doc = chat([{"id": i, "type": "message", "date": "2020-01-01T00:00:00", "text": "x" * 40} for i in range(200)])
    (tmp_path / "c.json").write_bytes(layout(doc))
    with open(tmp_path / "c.json", "rb") as stream:
        assert len(list(plan(stream, 1000))) == 1


def test_ranges_own_every_byte_once(tmp_path) -> None:
    """Progress: each range reports the raw bytes it owns; together they are the whole file."""
    chats = [chat([message(i, "x" * 60, from_id="user1") for i in range(n)], name=f"c{n}") for n in (80, 5, 90)]
    path = tmp_path / "d.json"
    path.write_bytes(b"\xef\xbb\xbf" + layout(account(chats)))
    with open(path, "rb") as stream:
        ranges = list(plan(stream, 2000))
    assert len(ranges) > 2
    assert ranges[0].owned[0] == 0 and ranges[-1].owned[1] == path.stat().st_size
    assert all(a.owned[1] == b.owned[0] for a, b in zip(ranges, ranges[1:], strict=False))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([b"\n  }", b"\n   }", b"}", b"\n  ", b" ", b"x", b"\n"]), max_size=60),
    st.integers(1, 9),
    st.integers(0, 300),
)
def test_planner_count_equals_bytes_count(pieces: list[bytes], slice_bytes: int, cut: int) -> None:
    """The numpy count (GIL-free) finds what `bytes.count` finds, across slice boundaries."""
    from unittest import mock

    import numpy as np

    from exporter import splitting

    data = b"".join(pieces)
    needle = b"\n  }"
    cut = min(cut, len(data))
    want = data[: cut + len(needle) - 1].count(needle)
    with mock.patch.object(splitting, "COUNT_SLICE", slice_bytes):
        assert splitting._occurrences(np.frombuffer(data, np.uint8), needle, cut) == want
