"""`tdesktop-json`: golden records for every trap of formats.md §1 / §8, plus streaming and errors.

Each fixture in tests/fixtures/tdesktop-json/ is synthetic and holds one edge case; its
`.expected.json` was generated with TGEXPORT_REGEN_GOLDEN=1 and then checked field by field
against formats.md. The focused tests below restate the key facts of each trap, so a reader
sees what the golden pins without diffing JSON.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from golden import FIXTURES, check_golden, convert_fixture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from exporter import validate
from exporter.converters import get
from exporter.converters.base import ConvertOptions, Item, SourceRef
from exporter.converters.tdesktop_json import Chat, Era, message_item
from exporter.errors import InputError
from exporter.normalize import stamp_provenance
from exporter.schema import load_schema

FMT = "tdesktop-json"
DIR = FIXTURES / FMT
BERLIN = ConvertOptions(tz=ZoneInfo("Europe/Berlin"), tz_name="Europe/Berlin")
UTC = ConvertOptions(tz=ZoneInfo("UTC"), tz_name="UTC")
GEN = Path("/work/shared/bench/gen_tdesktop.py")

# case -> options (None: defaults). Every fixture file must be listed here.
CASES: dict[str, ConvertOptions | None] = {
    "single_chat": None,
    "full_account": None,
    "entities_astral": None,
    "hashtags_mentions_urls": None,
    "local_dates_tz": BERLIN,
    "bad_escapes": None,
    "from_id_strings": None,
    "from_id_shifted": UTC,
    "from_id_bare_int": UTC,
    "absent_keys": None,
    "migrated_group": None,
    "edits_forwards_replies": None,
    "media_files": None,
    "media_placeholders": None,
    "media_poll": None,
    "media_location_contact": None,
    "reactions": None,
    "service": None,
    "malformed": None,
}
# Message keys tdesktop writes (formats.md §1.3, §1.6, §1.9), for the robustness fuzz test.
MESSAGE_KEYS = [
    "id",
    "type",
    "date",
    "date_unixtime",
    "edited",
    "edited_unixtime",
    "from",
    "from_id",
    "actor",
    "actor_id",
    "action",
    "author",
    "forwarded_from",
    "reply_to_message_id",
    "reply_to_peer_id",
    "text",
    "text_entities",
    "photo",
    "file",
    "media_type",
    "file_name",
    "poll",
    "reactions",
    "location_information",
    "contact_information",
    "information_text",
    "message_id",
    "width",
    "height",
    "duration_seconds",
    "sticker_emoji",
]
REFERENCE = Draft202012Validator(load_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)


# --- helpers ---------------------------------------------------------------------------------


def source_of(data: bytes, name: str = "result.json") -> SourceRef:
    return SourceRef(display=name, sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def items_of(data: bytes, options: ConvertOptions | None = None) -> list[Item]:
    return list(get(FMT).iter_items(io.BytesIO(data), source_of(data), options or ConvertOptions()))


def fixture_items(case: str) -> list[Item]:
    return items_of((DIR / f"{case}.json").read_bytes(), CASES[case])


def records(case: str) -> dict[int, dict[str, Any]]:
    """Records of a single-chat fixture by post_id."""
    return {item.record["post_id"]: item.record for item in fixture_items(case) if item.record}


def stamped(record: dict[str, Any], locator: str) -> dict[str, Any]:
    """A copy of the record with the provenance fields the pipeline stamps before validation."""
    full = dict(record)
    stamp_provenance(full, FMT, "x", "0" * 64, locator, "0" * 16)
    return full


def schema_errors(record: dict[str, Any], locator: str) -> list[str]:
    full = stamped(record, locator)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in REFERENCE.iter_errors(full)]
    if not errors and not validate.is_valid(full):  # jsonschema-rs also checks `format: uri`
        errors = ["jsonschema-rs: invalid"]
    return errors


# --- golden records --------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    check_golden(FMT, DIR / f"{case}.json", CASES[case])


@pytest.mark.parametrize("case", sorted(set(CASES) - {"malformed"}))  # malformed: see its own test
def test_clean_records_are_schema_valid(case: str) -> None:
    for item in fixture_items(case):
        if item.record is not None and not item.problems:
            assert schema_errors(item.record, item.locator) == [], item.locator


def test_every_fixture_file_has_a_case() -> None:
    inputs = {p.name.split(".")[0] for p in DIR.glob("*.json") if not p.name.endswith(".expected.json")}
    expected = {p.name.split(".")[0] for p in DIR.glob("*.expected.json")}
    assert inputs == set(CASES) == expected


# --- shapes: single chat and full account ----------------------------------------------------


def test_single_chat_text_as_string_and_as_parts() -> None:
    recs = records("single_chat")
    assert recs[1]["kind"] == "service" and recs[1]["service_action"] == "create_channel"
    assert recs[2]["text"] == "Hello, world!\nSecond line." and recs[2]["entities"] == []
    assert recs[3]["text"] == "Read this now."
    assert [(e["type"], e["offset"], e["length"]) for e in recs[3]["entities"]] == [("bold", 5, 4)]
    assert recs[3]["chat_id"] == 1234567890 and recs[3]["chat_type"] == "channel"
    assert recs[3]["url"] == "https://t.me/c/1234567890/3"
    assert recs[3]["date"] == "2024-03-01T12:10:00Z"  # date_unixtime wins over the local `date`
    assert recs[3]["sender_id"] == "channel1234567890"


def test_full_account_locators_and_same_id_in_two_chats() -> None:
    outcomes = convert_fixture(FMT, DIR / "full_account.json")
    got = [(o["locator"], o["chat_id"], o["post_id"], o["chat_type"]) for o in outcomes]
    assert got == [
        ("/chats/list/0/messages/0", 1000000002, 10, "private"),
        ("/chats/list/0/messages/1", 1000000002, 11, "private"),
        ("/chats/list/1/messages/0", 1987654321, 10, "supergroup"),
        ("/chats/list/2/messages/0", 1000000001, 1, "saved"),
        ("/left_chats/list/0/messages/0", 1555555555, 7, "channel"),
    ]
    # `other_data.messages`, contacts and frequent_contacts (with their own id/type/name) are not chats
    assert all(o["text"] != "decoy" for o in outcomes)
    assert outcomes[3]["chat_title"] is None  # saved_messages has no `name`
    assert [o["url"] for o in outcomes] == [
        None,
        None,
        "https://t.me/c/1987654321/10",
        None,
        "https://t.me/c/1555555555/7",
    ]


# --- text, entities, offsets -----------------------------------------------------------------


def test_astral_emoji_before_entities_uses_code_point_offsets() -> None:
    rec = records("entities_astral")[20]
    text = rec["text"]
    spans = {e["type"]: text[e["offset"] : e["offset"] + e["length"]] for e in rec["entities"]}
    link = next(e for e in rec["entities"] if e["type"] == "text_link")
    assert (link["offset"], link["length"]) == (12, 6)  # UTF-16 would say 15: 🇺🇦 and 😀 are surrogate pairs
    assert spans["text_link"] == "report" and link["url"] == "https://example.org/report"
    assert spans["hashtag"] == "#новини" and spans["mention"] == "@Example_User"
    assert spans["url"] == "example.org/page" and spans["phone_number"] == "+1 555 0100"
    assert spans["text_mention"] == "Sam"
    mention_name = next(e for e in rec["entities"] if e["type"] == "text_mention")
    assert mention_name["user_id"] == 1000000002
    emoji = next(e for e in rec["entities"] if e["type"] == "custom_emoji")
    assert spans["custom_emoji"] == "👍" and emoji["custom_emoji_id"] == "5368324170671202286"
    assert rec["hashtags"] == ["новини"] and rec["mentions"] == ["example_user"]


def test_pre_v4_1_2_text_array_without_text_entities() -> None:
    rec = records("entities_astral")[21]
    assert rec["text"] == "👨\u200d👩\u200d👧😀 @example_user and #Tag!"
    assert [(e["type"], e["offset"], e["length"]) for e in rec["entities"]] == [("mention", 7, 13), ("hashtag", 25, 4)]
    assert rec["hashtags"] == ["Tag"] and rec["mentions"] == ["example_user"]


def test_hashtags_mentions_urls() -> None:
    recs = records("hashtags_mentions_urls")
    assert recs[30]["urls"] == ["https://example.org/a?b=1", "https://example.org/b", "http://www.example.net"]
    assert recs[30]["hashtags"] == ["Breaking", "breaking"]
    assert recs[30]["mentions"] == ["somechannel"]
    assert recs[31]["urls"] == ["https://example.com/x", "https://t.me/example_channel/5"]
    assert (recs[32]["hashtags"], recs[32]["mentions"], recs[32]["urls"]) == ([], [], [])


def test_bad_escapes_are_repaired_and_literal_backslash_x_stays() -> None:
    recs = records("bad_escapes")
    assert recs[140]["text"] == "bell\x07 and unit\x1f sep, tab\t \x1bbold \u2028 end"
    bold = recs[140]["entities"][0]
    assert recs[140]["text"][bold["offset"] : bold["offset"] + bold["length"]] == "\x1bbold"
    assert recs[141]["text"] == "literal \\x41 stays; backslash then control \\\x01; even run \\\\x4A; NUL\x00!"
    assert recs[141]["sender_name"] == "Example\x0bChannel"


# --- dates -----------------------------------------------------------------------------------


def test_local_dates_without_tz_raise_input_error_naming_tz() -> None:
    data = (DIR / "local_dates_tz.json").read_bytes()
    with pytest.raises(InputError) as caught:
        items_of(data)
    assert "result.json" in caught.value.message and "local-time" in caught.value.message
    assert "--tz" in caught.value.hint


def test_local_dates_with_tz_become_utc_across_dst() -> None:
    recs = records("local_dates_tz")
    assert recs[1]["date"] == "2021-01-15T13:00:00Z"  # CET, UTC+1
    assert recs[2]["date"] == "2021-07-15T12:00:00Z"  # CEST, UTC+2
    assert recs[2]["edit_date"] == "2021-07-15T12:30:00Z" and recs[2]["is_edited"] is True
    assert recs[3]["date"] == "2021-03-28T01:30:00Z"  # 03:30 CEST, just after the gap
    assert recs[4]["date"] == "2021-10-31T00:30:00Z"  # 02:30 happens twice; the first (CEST) is taken


def test_unixtime_wins_over_tz() -> None:
    assert records("single_chat") == {
        k: v
        for k, v in ((i.record["post_id"], i.record) for i in items_of((DIR / "single_chat.json").read_bytes(), BERLIN))
    }


# --- ids and senders -------------------------------------------------------------------------


def test_from_id_eras() -> None:
    shifted = [i.record for i in fixture_items("from_id_shifted")]
    assert [(r["chat_id"], r["post_id"], r["sender_id"]) for r in shifted] == [
        (1234567890, 5, "user1000000002"),
        (1234567890, 6, "channel1234567890"),
        (1234567890, 7, "user1000000002"),
        (1000000003, 1, None),  # no actor: the era learnt from earlier messages un-shifts the chat id
        (1000000003, 2, "user1000000003"),
        (123456789, 3, "user1000000002"),
        (123456789, 4, "user1000000002"),
    ]
    assert shifted[2]["reply_to_post_id"] is None  # reply_to_peer_id: the id is another chat's
    bare = [i.record for i in fixture_items("from_id_bare_int")]
    assert [(r["chat_id"], r["sender_id"]) for r in bare] == [
        (1000000002, "user1000000002"),
        (1000000002, "user1000000001"),
        (1234567890, None),
    ]
    strings = records("from_id_strings")
    assert [strings[i]["sender_id"] for i in (60, 61, 62, 63, 64)] == [
        "user1000000002",
        "channel1234567890",
        "channel1555555555",
        "chat123456789",
        "user1000000002",
    ]


def test_negative_ids_of_migrated_group_history() -> None:
    recs = records("migrated_group")
    assert recs[-999999876]["reply_to_post_id"] == -999999880
    assert recs[-999999876]["url"] is None and recs[2]["url"] == "https://t.me/c/1234567890/2"
    assert recs[1]["service_action"] == "migrate_from_group"


def test_absent_keys_mean_null_not_false() -> None:
    recs = records("absent_keys")
    assert recs[40]["text"] == "" and recs[41]["text"] == ""
    assert recs[42]["kind"] == "message" and recs[42]["sender_id"] is None
    assert recs[43]["sender_name"] is None and recs[43]["sender_id"] == "user1000000009"
    for rec in recs.values():
        assert rec["reactions"] == [] and rec["reactions_total"] is None
        assert rec["media_type"] is None and rec["media"] is None and rec["edit_date"] is None
        assert rec["views"] is None and rec["forward_from_name"] is None


def test_edits_authors_forwards_replies() -> None:
    recs = records("edits_forwards_replies")
    assert (recs[50]["edit_date"], recs[50]["is_edited"]) == ("2024-03-01T13:00:00Z", True)
    assert recs[51]["is_edited"] is False and recs[51]["author_signature"] == "Night Editor"
    assert recs[52]["forward_from_name"] == "Other Example Channel"
    assert recs[53]["forward_from_name"] is None  # `forwarded_from: null` (deleted account)
    assert recs[54]["reply_to_post_id"] == 50
    assert recs[55]["reply_to_post_id"] is None  # cross-chat reply
    assert recs[56]["sender_id"] == "channel1234567890"


# --- media, reactions, service ---------------------------------------------------------------


def test_media_detected_by_key_presence() -> None:
    recs = records("media_files")
    kinds = {pid: (r["media_type"], r["media"]["file_name"]) for pid, r in recs.items()}
    assert kinds == {
        70: ("photo", None),
        71: ("document", "report.pdf"),
        72: ("video", "clip.mp4"),
        73: ("voice", "audio_1.ogg"),
        74: ("video_note", "file_1.mp4"),
        75: ("animation", "funny.gif.mp4"),
        76: ("audio", "song.mp3"),
        77: ("sticker", "sticker.webp"),
        78: ("document", "old_export_name.zip"),
        79: ("other", "x.bin"),
    }
    assert recs[70]["media"]["file_size"] == 123456 and recs[70]["text"] == "photo caption"
    assert recs[76]["chat_title"] == "Example Channel" and recs[76]["text"] == ""  # audio `title` ignored
    assert recs[77]["media"]["sticker_emoji"] == "😀"
    assert all(r["media"]["available"] is True for r in recs.values())


def test_file_placeholders_mean_not_available() -> None:
    recs = records("media_placeholders")
    assert [(r["media_type"], r["media"]["available"], r["media"]["file_name"]) for r in recs.values()] == [
        ("photo", False, None),
        ("video", False, "big.mkv"),
        ("document", False, "gone.pdf"),
    ]


def test_polls_with_string_and_text_encoded_questions() -> None:
    recs = records("media_poll")
    assert recs[90]["poll"] == {
        "question": "Tea or coffee?",
        "answers": [{"text": "Tea", "voters": 5}, {"text": "Coffee", "voters": 7}],
        "total_voters": 12,
        "closed": False,
        "quiz": None,
    }
    assert recs[91]["poll"]["question"] == "Which emoji 😀?"
    assert [a["text"] for a in recs[91]["poll"]["answers"]] == ["this one", "that one"]


def test_location_and_contact() -> None:
    recs = records("media_location_contact")
    assert [r["media_type"] for r in recs.values()] == ["location", "location", "location", "contact"]


def test_reactions() -> None:
    recs = records("reactions")
    assert recs[110]["reactions"] == [
        {"kind": "emoji", "emoji": "❤", "custom_emoji_id": None, "count": 12},
        {"kind": "emoji", "emoji": "❤", "custom_emoji_id": None, "count": 3},  # U+FE0F removed
        {"kind": "emoji", "emoji": "👍🏽", "custom_emoji_id": None, "count": 2},
        {"kind": "custom_emoji", "emoji": None, "custom_emoji_id": None, "count": 4},  # a file path
        {"kind": "custom_emoji", "emoji": None, "custom_emoji_id": None, "count": 1},  # "(unavailable)"
        {"kind": "custom_emoji", "emoji": None, "custom_emoji_id": "5368324170671202286", "count": 2},
        {"kind": "paid", "emoji": None, "custom_emoji_id": None, "count": 40},
    ]
    assert recs[110]["reactions_total"] == 64  # `empty` reactions are not counted
    assert (recs[111]["reactions"], recs[111]["reactions_total"]) == ([], None)


def test_service_messages() -> None:
    items = fixture_items("service")
    recs = {i.record["post_id"]: i.record for i in items if i.record}
    assert recs[120]["sender_id"] == "channel1234567890" and recs[120]["service_action"] == "create_channel"
    assert recs[121]["service_action"] == "pin_message" and recs[121]["reply_to_post_id"] == 119
    assert recs[122]["service_action"] == "custom_action"
    assert recs[122]["text"] == "Sam Sample did something custom"
    assert recs[123]["service_action"] == "some_future_action"
    assert recs[124]["sender_id"] is None and recs[124]["reply_to_post_id"] is None  # invoice in another chat
    assert recs[125]["chat_title"] == "Example Group"  # service `title` is not the chat title
    assert recs[126]["sender_name"] is None and recs[126]["sender_id"] == "user1000000009"
    assert all(r["kind"] == "service" and r["text"] == "" for k, r in recs.items() if k != 122)
    assert (items[-1].locator, items[-1].record, items[-1].skip_reason) == (
        "/messages/7",
        None,
        "unsupported message (Telegram Desktop exported no content)",
    )


# --- malformed items -------------------------------------------------------------------------


def test_malformed_items_are_reported_and_the_rest_come_out() -> None:
    items = {item.locator.rsplit("/", 1)[1]: item for item in fixture_items("malformed")}
    assert len(items) == 11
    good = [items[i] for i in ("0", "10")]
    for item in good:
        assert item.problems == [] and schema_errors(item.record, item.locator) == []
    assert [i.record["text"] for i in good] == ["good before", "good after"]

    def bad(index: str) -> tuple[list[str], list[str]]:
        item = items[index]
        errors = schema_errors(item.record, item.locator) if item.record is not None else []
        return item.problems, errors

    assert bad("1") == (["id: expected an integer message id, got '131'"], ["post_id: '131' is not of type 'integer'"])
    assert bad("2") == (["date: missing (neither `date_unixtime` nor `date`)"], [])
    assert bad("3") == (["text: expected a string or a list of parts, got int"], [])
    assert bad("4") == (["message: expected a JSON object, got str"], [])
    assert items["4"].record is None and items["5"].record is None
    assert bad("5") == (["message: expected a JSON object, got list"], [])
    assert bad("6") == (["date_unixtime: expected Unix seconds, got 'soon'"], [])
    assert bad("7") == (["text: unexpected part 7", "text: unexpected part {'type': 'bold', 'text': ['x']}"], [])
    assert items["7"].record["text"] == "ok "
    assert bad("8") == (
        ["type: unknown message type 'mystery'"],
        ["kind: 'mystery' is not one of ['message', 'service']"],
    )
    problems, errors = bad("9")  # a count that is not a number: no converter problem, schema-invalid
    assert problems == [] and errors == ["reactions/0/count: 'many' is not of type 'integer'"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(MESSAGE_KEYS),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
            max_leaves=8,
        ),
    )
)
def test_any_message_object_gives_an_item_never_an_exception(msg: dict[str, Any]) -> None:
    chat = Chat(pointer="", name="Example", raw_type="public_channel", raw_id=1234567890, era=Era())
    item = message_item(msg, chat, "/messages/0", UTC)
    assert item.record is not None or item.problems or item.skip_reason


# --- whole-file errors -----------------------------------------------------------------------

SINGLE = (DIR / "single_chat.json").read_bytes()
BROKEN_FILES = {
    "empty": b"",
    "whitespace": b" \n\t ",
    "truncated": SINGLE[: len(SINGLE) // 2],
    "truncated_after_key": b'{"name": "Example", "messages"',
    "binary_garbage": bytes(range(256)) * 4,
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "invalid_utf8_in_string": b'{"messages": [{"id": 1, "text": "\xff\xfe"}]}',
    "invalid_escape": b'{"messages": [{"id": 1, "text": "\\q"}]}',
    "object_not_export": b'{"foo": 1}',
    "array": b"[1, 2]",
    "string": b'"result"',
    "null": b"null",
    "messages_not_array": b'{"name": "x", "messages": 5}',
    "account_without_chats": b'{"about": "x", "personal_information": {"user_id": 1}}',
    "too_deep": b'{"messages": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
}


@pytest.mark.parametrize("name", sorted(BROKEN_FILES))
def test_broken_files_raise_input_error_with_hint(name: str) -> None:
    with pytest.raises(InputError) as caught:
        items_of(BROKEN_FILES[name])
    assert caught.value.message.startswith("result.json ")
    assert "\n" not in caught.value.message and "b'" not in caught.value.message
    assert caught.value.hint


def test_error_messages_say_what_is_wrong() -> None:
    def message(name: str) -> str:
        with pytest.raises(InputError) as caught:
            items_of(BROKEN_FILES[name])
        return caught.value.message

    assert "truncated" in message("truncated")
    assert "not a Telegram Desktop export" in message("object_not_export")
    assert "the document is an array" in message("array")
    assert "account export without any chats" in message("account_without_chats")
    assert "nested deeper" in message("too_deep")


def test_every_truncation_of_a_fixture_is_an_input_error() -> None:
    data = (DIR / "full_account.json").read_bytes().rstrip()
    for cut in range(0, len(data), 7):
        with pytest.raises(InputError):
            items_of(data[:cut])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_ever_raise_input_error(data: bytes) -> None:
    try:
        items_of(data)
    except InputError as exc:
        assert exc.hint


def test_empty_but_valid_exports_yield_nothing() -> None:
    assert items_of(b'{"name": "Example", "type": "public_channel", "id": 1, "messages": []}') == []
    assert items_of(b'{"about": "x", "chats": {"about": "y", "list": []}}') == []


def test_byte_order_mark_is_accepted() -> None:
    assert [i.record for i in items_of(b"\xef\xbb\xbf" + SINGLE)] == [i.record for i in items_of(SINGLE)]


# --- streaming -------------------------------------------------------------------------------


class CountingReader(io.RawIOBase):
    """A file wrapper that remembers how many bytes were read from it."""

    def __init__(self, raw: io.BufferedReader) -> None:
        self.raw, self.consumed = raw, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.consumed += len(data)
        return data


def generate(tmp_path: Path, *args: str) -> Path:
    if not GEN.exists():
        pytest.skip(f"{GEN} not available")
    out = tmp_path / "result.json"
    subprocess.run([sys.executable, str(GEN), *args, "--out", str(out)], check=True)
    return out


def test_streaming_a_generated_channel_holds_one_message_at_a_time(tmp_path: Path) -> None:
    path = generate(tmp_path, "--messages", "20000", "--seed", "3")
    size = path.stat().st_size
    assert size > 10 * 2**20
    source = SourceRef(display="result.json", sha256="0" * 64, size=size)
    with open(path, "rb") as raw:
        counting = CountingReader(raw)
        items = get(FMT).iter_items(counting, source, ConvertOptions())
        ids = [next(items).record["post_id"]]  # warm-up: imports and caches are not the stream's footprint
        assert counting.consumed < 2**20  # the first message came out long before the file was read
        window_start = counting.consumed
        tracemalloc.start()  # traced over a window of 2000 messages (tracing all 20000 is slow)
        try:
            ids += [item.record["post_id"] for item in itertools.islice(items, 2000)]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        window_bytes = counting.consumed - window_start
        problems = 0
        for item in items:
            ids.append(item.record["post_id"])
            problems += len(item.problems)
    # one message, the parser's and reader's 64 KiB buffers and some caches; never the document
    assert peak < min(2 * 2**20, size / 8), f"peak {peak} bytes while reading {window_bytes} of {size} bytes"
    assert len(ids) == 20000 and ids == sorted(set(ids)) and problems == 0
    assert counting.consumed == size


def test_streaming_a_generated_full_account_export(tmp_path: Path) -> None:
    path = generate(tmp_path, "--messages", "3000", "--seed", "3", "--channels", "3")
    with open(path, "rb") as raw:
        source = SourceRef(display="result.json", sha256="0" * 64, size=path.stat().st_size)
        items = list(get(FMT).iter_items(raw, source, ConvertOptions()))
    assert len(items) == 3000 and not any(i.problems for i in items)
    chats = [i.locator.split("/messages/")[0] for i in items]
    assert sorted(set(chats)) == ["/chats/list/0", "/chats/list/1", "/chats/list/2"]
    assert [chats.count(c) for c in sorted(set(chats))] == [1000, 1000, 1000]
    keys = {(i.record["chat_id"], i.record["post_id"]) for i in items}
    assert len(keys) == 3000 and len({i.record["chat_id"] for i in items}) == 3
    for item in items[::25]:
        assert validate.is_valid(stamped(item.record, item.locator)), item.locator
    assert json.dumps([i.record for i in items[:5]])  # records are plain JSON data
