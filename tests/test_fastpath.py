"""The columnar fast path gives exactly what the per-record path gives (issue #4).

Differential tests: every tdesktop-json fixture and generated exports (hypothesis: odd text,
entities, emoji, media, reactions, nulls, unknown keys) are converted both ways; the records,
the quarantined items with their reasons, the counts and the data file bytes must be identical.
"""

from __future__ import annotations

import hashlib
import io
import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from golden import FIXTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter import validate
from exporter.arrowbuild import records_to_table
from exporter.converters import get
from exporter.converters.base import ConvertOptions, SourceRef
from exporter.converters.tdesktop_json import Chat, message_item
from exporter.errors import TgExportError
from exporter.fastpath.records import Stamp
from exporter.fastpath.runner import FastPathAbort, FastRunner
from exporter.framing import UNPARSED_KEYS, DocumentFramer, LayoutError
from exporter.normalize import stamp_provenance
from exporter.sources import InputUnit
from exporter.task import TaskSpec, run_task

FMT = "tdesktop-json"
FIXTURE_DIR = FIXTURES / FMT
RUN_ID = "0123456789abcdef"
UTC_OPTIONS = ConvertOptions(tz=None)


def _options(case: str) -> ConvertOptions:
    from zoneinfo import ZoneInfo

    zones = {"local_dates_tz": "Europe/Berlin", "from_id_shifted": "UTC", "from_id_bare_int": "UTC"}
    zone = zones.get(case)
    return ConvertOptions(tz=ZoneInfo(zone), tz_name=zone) if zone else ConvertOptions()


# --- record level: FastRunner vs the converter ------------------------------------------------------


def _accept(record: dict[str, Any], problems: list[str]) -> bool:
    return not problems and validate.is_valid(record)


def per_record(data: bytes, options: ConvertOptions) -> dict[str, Any]:
    source = SourceRef("in.json", hashlib.sha256(data).hexdigest(), len(data))
    accepted, rejected, skipped = [], [], []
    for item in get(FMT).iter_items(io.BytesIO(data), source, options):
        if item.skip_reason:
            skipped.append((item.locator, item.skip_reason))
            continue
        if item.record is not None:
            stamp_provenance(item.record, FMT, source.display, source.sha256, item.locator, RUN_ID)
            if _accept(item.record, item.problems):
                accepted.append(item.record)
                continue
            rejected.append((item.locator, item.problems + validate.violations(item.record)))
        else:
            rejected.append((item.locator, item.problems))
    table = records_to_table(accepted) if accepted else None
    return {"rows": table.to_pylist() if table else [], "rejected": rejected, "skipped": skipped}


def fast(data: bytes, options: ConvertOptions) -> dict[str, Any] | None:
    """The fast path's outcome, or None when it hands the whole input to the per-record path."""
    digest = hashlib.sha256(data).hexdigest()
    rejected, skipped = [], []

    def route(item: Any, accepted: list) -> None:
        if item.skip_reason:
            skipped.append((item.locator, item.skip_reason))
            return
        if item.record is not None:
            stamp_provenance(item.record, FMT, "in.json", digest, item.locator, RUN_ID)
            if _accept(item.record, item.problems):
                accepted.append(item.record)
                return
            rejected.append((item.locator, item.problems + validate.violations(item.record)))
        else:
            rejected.append((item.locator, item.problems))

    runner = FastRunner(Stamp(FMT, "in.json", digest, RUN_ID), options, route)
    try:
        tables = [runner.run_batch(batch) for batch in DocumentFramer(io.BytesIO(data), 1 << 12).batches()]
    except (FastPathAbort, LayoutError):
        return None
    # Rows of one batch may come fast-first: the files are sorted by (chat, post id) anyway, and the
    # runner keeps message order wherever a post id repeats. Compare in message order.
    rows = sorted((row for table in tables for row in table.to_pylist()), key=_message_order)
    return {"rows": rows, "rejected": rejected, "skipped": skipped, "fast_rows": runner.rows["fast"]}


def _message_order(row: dict[str, Any]) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in row["source_locator"].split("/"))


def assert_same(data: bytes, options: ConvertOptions) -> dict[str, Any] | None:
    got = fast(data, options)
    if got is None:
        return None
    want = per_record(data, options)
    fast_rows = got.pop("fast_rows")
    assert got["skipped"] == want["skipped"]
    assert got["rejected"] == want["rejected"]
    assert len(got["rows"]) == len(want["rows"])
    for mine, theirs in zip(got["rows"], want["rows"], strict=True):
        assert mine == theirs, mine["source_locator"]
    got["fast_rows"] = fast_rows
    return got


# Fixtures the fast path must take (at least partly) rather than hand over whole.
EXPECT_FAST = {
    "bad_escapes",
    "single_chat",
    "full_account",
    "entities_astral",
    "hashtags_mentions_urls",
    "edits_forwards_replies",
    "media_files",
    "media_poll",
    "media_placeholders",
    "reactions",
    "service",
    "migrated_group",
    "from_id_strings",
}


FIXTURE_FILES = sorted(p for p in FIXTURE_DIR.glob("*.json") if not p.name.endswith(".expected.json"))


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.stem)
def test_fixture_records_identical(path: Path) -> None:
    case = path.stem
    try:
        outcome = assert_same(path.read_bytes(), _options(case))
    except TgExportError as exc:  # the per-record path raises for broken inputs; the fast path must too
        with pytest.raises(type(exc)):
            per_record(path.read_bytes(), _options(case))
        return
    if case in EXPECT_FAST:
        assert outcome is not None and outcome["fast_rows"] > 0, f"{case}: the fast path did not run"


# --- task level: same files, same bytes, same rejects ----------------------------------------------


def _task(tmp_path: Path, src: Path, mode: str, **kw: Any) -> tuple[Any, dict[str, str]]:
    root = tmp_path / mode
    (root / "posts").mkdir(parents=True, exist_ok=True)
    unit = InputUnit(display=src.name, opener=partial(open, str(src), "rb"), size=src.stat().st_size)
    spec = TaskSpec(
        0,
        unit,
        FMT,
        hashlib.sha256(src.read_bytes()).hexdigest(),
        root,
        kw.get("to", "parquet"),
        kw.get("partition_by", ("year", "month")),
        kw.get("options", ConvertOptions()),
        kw.get("on_invalid", "quarantine"),
        RUN_ID,
        {"test": True},
    )
    result = run_task(spec)
    outputs = [p for p in root.rglob("*") if p.is_file() and (p.name.endswith("rejects.jsonl") or "posts" in p.parts)]
    return result, {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in outputs}


def both_tasks(tmp_path: Path, src: Path, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> tuple[Any, Any]:
    monkeypatch.setenv("TGEXPORT_FASTPATH", "1")
    fast_result, fast_files = _task(tmp_path, src, "fast", **kw)
    monkeypatch.setenv("TGEXPORT_FASTPATH", "0")
    slow_result, slow_files = _task(tmp_path, src, "slow", **kw)
    assert fast_files == slow_files
    for name in ("read", "written", "quarantined", "skipped", "reasons", "files"):
        assert getattr(fast_result, name) == getattr(slow_result, name), name
    return fast_result, slow_result


@pytest.mark.parametrize(
    "case",
    ["single_chat", "full_account", "reactions", "media_poll", "service", "hashtags_mentions_urls", "malformed"],
)
@pytest.mark.parametrize("to", ["parquet", "jsonl"])
def test_fixture_task_outputs_byte_identical(tmp_path, monkeypatch, case, to) -> None:
    fast_result, _ = both_tasks(tmp_path, FIXTURE_DIR / f"{case}.json", monkeypatch, to=to)
    assert fast_result.read > 0


def test_partition_by_chat_and_quarantine_identical(tmp_path, monkeypatch) -> None:
    src = FIXTURE_DIR / "full_account.json"
    both_tasks(tmp_path, src, monkeypatch, partition_by=("chat", "year", "month"))


# --- generated exports ------------------------------------------------------------------------------

ODD_TEXT = st.lists(
    st.one_of(
        st.sampled_from(list("ab #@/:.wWtm_-0123\n\t ")),
        st.sampled_from(["👍", "❤️", "🇺🇦", "👨‍👩‍👧", "\u200d", "\ufe0f", "é", "İ", "ſ", "Ⅻ", "٣", "\x07", "\u2028"]),
        st.sampled_from(["https://", "HTTP://", "httpſ://", "www.", "WwW.", "t.me/", "T.ME/", "#tag", "@user_name"]),
        st.characters(blacklist_categories=("Cs",)),
    ),
    max_size=12,
).map("".join)
PART_TYPES = [
    "plain",
    "bold",
    "italic",
    "link",
    "text_link",
    "mention",
    "hashtag",
    "custom_emoji",
    "mention_name",
    "bot_command",
    "email",
    "phone",
    "unknown",
    "spoiler",
    "pre",
    "blockquote",
    "MessageEntityTextUrl",
    "strange",
]
URLISH = st.sampled_from(
    ["https://example.org/a", "http://x.y/z?q=1", "example.org/x", "t.me/chan", "WWW.Example.org", "tg://x", " "]
)


@st.composite
def parts(draw: Any) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(PART_TYPES))
        text = draw(st.one_of(ODD_TEXT, URLISH, st.sampled_from(["#tag", "@someone", "#", "@", "##x", "@Ab_cd"])))
        part: dict[str, Any] = {"type": kind, "text": text}
        if kind == "text_link" and draw(st.booleans()):
            part["href"] = draw(URLISH)
        if kind == "custom_emoji":
            part["document_id"] = draw(st.sampled_from(["5368324170671202286", "stickers/x.webp", "", " 12 "]))
        if kind == "mention_name":
            part["user_id"] = draw(st.integers(1, 10**12))
        if kind == "pre" and draw(st.booleans()):
            part["language"] = "python"
        out.append(part)
    return out


REACTION = st.fixed_dictionaries(
    {"type": st.sampled_from(["emoji", "custom_emoji", "paid", "empty"]), "count": st.integers(0, 10**6)},
    optional={
        "emoji": st.sampled_from(["👍", "❤", "❤️", "☺︎", " 🔥 ", "\ufe0f"]),
        "document_id": st.sampled_from(["5368324170671202286", "stickers/s.webp", "(unavailable)"]),
    },
)
MEDIA = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {
            "photo": st.sampled_from(
                ["photos/p@1.jpg", "(File not included. Change data exporting settings to download.)"]
            )
        },
        optional={
            "width": st.integers(0, 5000),
            "height": st.integers(0, 5000),
            "photo_file_size": st.integers(0, 10**7),
        },
    ),
    st.fixed_dictionaries(
        {
            "file": st.sampled_from(
                ["files/a b.pdf", "video_files\\v.mp4", "(File unavailable, please try again later)", ""]
            )
        },
        optional={
            "file_name": st.sampled_from(["a.pdf", "x.mp4"]),
            "media_type": st.sampled_from(["video_file", "sticker", "voice_message", "odd_type"]),
            "mime_type": st.just("video/mp4"),
            "file_size": st.integers(0, 10**9),
            "duration_seconds": st.integers(0, 10**4),
            "sticker_emoji": st.just("😀"),
            "thumbnail": st.just("x_thumb.jpg"),
        },
    ),
    st.just({"media_type": "sticker"}),
    st.just({"poll": {"question": "Q?", "closed": True, "total_voters": 3, "answers": [{"text": "a", "voters": 3}]}}),
    st.just({"location_information": {"latitude": 1.5, "longitude": 2.5}}),
)
ODDITIES = st.sampled_from(
    [
        {},
        {},
        {},
        {"from": None},
        {"via_bot": "@bot"},
        {"saved_from": "Someone"},
        {"unknown_new_key": [1, 2]},
        {"edited": "2024-01-01T00:00:00"},
        {"edited_unixtime": "not-a-number"},
        {"date_unixtime": "170929440O"},
        {"date_unixtime": "99999999999999"},
        {"reply_to_peer_id": "channel5"},
        {"from_id": "user-5"},
        {"type": "unsupported"},
        {"type": "weird"},
        {"information_text": "custom #tag"},
        {"author": "A", "forwarded_from": None},
    ]
)


@st.composite
def messages(draw: Any) -> list[dict[str, Any]]:
    out = []
    for index in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["message", "message", "message", "service"]))
        msg: dict[str, Any] = {
            "id": draw(st.one_of(st.integers(-(10**9), 10**9), st.just(index + 1))),
            "type": kind,
            "date": "2024-03-01T15:00:00",
            "date_unixtime": str(draw(st.integers(0, 2_000_000_000))),
        }
        if kind == "service":
            msg["actor"] = "Chan"
            msg["actor_id"] = "channel1234567890"
            msg["action"] = draw(st.sampled_from(["pin_message", "create_channel", "score_in_game", "", "odd"]))
            msg["message_id"] = draw(st.integers(1, 100))
        else:
            msg["from"] = "Chan"
            msg["from_id"] = draw(st.sampled_from(["channel1234567890", "user42", "chat7"]))
        if draw(st.booleans()):
            msg["edited"] = "2024-03-01T16:00:00"
            msg["edited_unixtime"] = str(draw(st.integers(0, 2_000_000_000)))
        if draw(st.integers(0, 9)) == 0:
            msg["reply_to_message_id"] = draw(st.integers(1, 100))
        msg.update(draw(MEDIA))
        text_parts = draw(parts())
        msg["text"] = [p["text"] if p["type"] == "plain" else p for p in text_parts]
        msg["text_entities"] = text_parts
        if draw(st.booleans()):
            msg["reactions"] = draw(st.lists(REACTION, max_size=4))
        msg.update(draw(ODDITIES))
        out.append(msg)
    return out


def export_bytes(msgs: list[dict[str, Any]], chat_type: str = "public_channel") -> bytes:
    doc = {"name": "Chan", "type": chat_type, "id": 1234567890, "messages": msgs}
    return json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.sampled_from(["public_channel", "private_group", "personal_chat", "saved_messages"]))
def test_generated_exports_records_identical(msgs: list[dict[str, Any]], chat_type: str) -> None:
    data = export_bytes(msgs, chat_type)
    try:
        assert_same(data, ConvertOptions())
    except TgExportError as exc:
        with pytest.raises(type(exc)):
            per_record(data, ConvertOptions())


def test_generated_corpus_goes_mostly_fast() -> None:
    """The benchmark generator's messages: nearly all on the columnar path, all identical."""
    import random
    import sys

    sys.path.insert(0, "/work/shared/bench")
    gen = pytest.importorskip("gen_tdesktop")
    rng = random.Random(3)
    msgs = list(gen.gen_chat(rng, 1500, "Канал", 1234567890))
    outcome = assert_same(export_bytes(msgs), ConvertOptions())
    assert outcome is not None and outcome["fast_rows"] >= 1400


# --- guard: the keys the census lets through really are ignored per record -------------------------


def _outcome(msg: dict[str, Any]) -> tuple:
    chat = Chat("", "Chan", "public_channel", 1)
    try:
        item = message_item(msg, chat, "/messages/0", ConvertOptions())
    except TgExportError as exc:
        return ("error", type(exc).__name__, str(exc))
    return ("item", item.record, item.problems, item.skip_reason)


ANY_JSON = [None, "2024-01-01T00:00:00", 5, 1.5, True, [1, "a"], {"nested": {"x": None}}, []]


@settings(max_examples=60, deadline=None)
@given(messages())
def test_unparsed_keys_do_not_change_records(msgs: list[dict[str, Any]]) -> None:
    """`framing.UNPARSED_KEYS` pass the census with any value: the converter must ignore them
    (`date` beside `date_unixtime`, `text` beside `text_entities`, the others always)."""
    beside = {"date": "date_unixtime", "text": "text_entities"}
    for msg in msgs:
        for name in UNPARSED_KEYS:
            if name in beside and beside[name] not in msg:
                continue
            base = {k: v for k, v in msg.items() if k != name}
            want = _outcome(dict(base))
            for value in ANY_JSON:
                assert _outcome({**base, name: value}) == want, (name, value)


# --- hashtags / mentions / urls: the vectorized lists and their guard --------------------------------


@pytest.mark.parametrize("case", ["hashtags_mentions_urls", "single_chat", "entities_astral", "full_account"])
def test_calling_normalize_per_row_gives_the_same_records(monkeypatch, case) -> None:
    """The fallback used when `normalize.extract_*` change meaning: same records as per record."""
    from exporter.fastpath import textcols

    monkeypatch.setattr(textcols, "semantics_hold", lambda: False)
    outcome = assert_same((FIXTURE_DIR / f"{case}.json").read_bytes(), _options(case))
    assert outcome is not None and outcome["fast_rows"] > 0


def test_probe_notices_when_extract_functions_change_meaning(monkeypatch) -> None:
    from exporter import normalize
    from exporter.fastpath import textcols

    def regex_when_no_hashtag_entity(text: str, entities: Any = None) -> list[str]:
        tags = [e for e in entities or () if e["type"] == "hashtag"]
        return [
            text[e["offset"] : e["offset"] + e["length"]].lstrip("#") for e in tags
        ] or normalize.HASHTAG_RE.findall(text)

    textcols.semantics_hold.cache_clear()
    try:
        assert textcols.semantics_hold()
        monkeypatch.setattr(normalize, "extract_hashtags", regex_when_no_hashtag_entity)
        textcols.semantics_hold.cache_clear()
        assert not textcols.semantics_hold()
    finally:
        monkeypatch.undo()
        textcols.semantics_hold.cache_clear()


def test_odd_chat_metadata_and_ids_going_backwards(tmp_path, monkeypatch) -> None:
    """Unhashable chat metadata, and a post id that repeats: same outputs, and the merge runs."""
    msgs = [
        {"id": i, "type": "message", "date_unixtime": str(1_700_000_000 + i), "text": "x", "text_entities": []}
        for i in (1, 2, 3, 2)
    ]
    doc = {"name": ["odd", "name"], "type": {"k": 1}, "id": 5, "messages": msgs}
    src = tmp_path / "odd.json"
    src.write_bytes(json.dumps(doc, indent=1).encode())
    assert assert_same(src.read_bytes(), ConvertOptions()) is not None
    fast_result, _ = both_tasks(tmp_path, src, monkeypatch)
    assert fast_result.keys["unique"] is False
