"""Pseudonymization: planted persons never reach any output file; pseudonyms are keyed and stable."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pii_planted import (
    CHANNEL_TITLE,
    CHANNEL_USERNAME,
    MENTIONED,
    MENTIONED_ID,
    PLANTED,
    PUBLIC,
    SENDER,
    USER_ID,
    USERNAME,
    plant_all,
)

from exporter import pseudonymize as pz
from exporter.arrowbuild import records_to_table
from exporter.errors import SchemaError, UsageError
from exporter.pipeline import ConvertRequest, convert
from exporter.pseudonymize_text import apply_spans
from exporter.schema import pii_fields
from exporter.validate_dataset import validate_dataset

KEY_A, KEY_B = bytes(range(32)), bytes(range(1, 33))
PSEUDONYM = re.compile(r"^[a-z]+:[0-9a-f]{16}$")


def run(inputs: Path, out: Path, key: bytes | None, partition_by=("year", "month"), **flags) -> dict:
    spec = pz.PseudonymizeSpec(key, **flags) if key is not None else None
    request = ConvertRequest([str(inputs)], out, tz_name="UTC", jobs=1, pseudonymize=spec, partition_by=partition_by)
    convert(request)
    return json.loads((out / "_manifest.json").read_text(encoding="utf-8"))


def rows(dataset: Path) -> list[dict]:
    return pads.dataset(dataset / "posts", format="parquet", partitioning="hive").to_table().to_pylist()


def output_texts(root: Path):
    """Every output file as text: raw bytes, Parquet rows and footers decoded, JSON unescaped."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        yield path, data.decode("utf-8", "replace")
        if path.suffix == ".parquet":
            yield path, repr(pq.read_table(path, partitioning=None).to_pylist())
            yield path, repr(pq.read_metadata(path).metadata)
        elif path.suffix == ".jsonl":
            yield path, repr([json.loads(line) for line in data.decode().splitlines() if line.strip()])
        elif path.suffix == ".json":
            yield path, repr(json.loads(data))


def leaks(root: Path, needles: list[str]) -> list[tuple[str, str]]:
    found = set()
    for path, text in output_texts(root):
        folded = text.casefold()
        found |= {(str(path.relative_to(root)), n) for n in needles if n.casefold() in folded}
    return sorted(found)


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    return plant_all(tmp_path_factory.mktemp("planted"))


@pytest.fixture(scope="module")
def redacted(planted, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("out") / "ds"
    return out, run(planted, out, KEY_A, redact_text=True)


# --- identities and keys ---------------------------------------------------------------------------


def test_pseudonyms_are_keyed_truncated_hmac_of_normalized_identities():
    ring = pz.Keyring(KEY_A)
    assert ring.user(123) == ring.user("123") == ring.user("user123")
    assert PSEUDONYM.match(ring.user(123)) and ring.user(123).startswith("user:")
    assert ring.name("Zinaida  Kvashnina") == ring.name("ZINAIDA KVASHNINA") == ring.name("Ｚinaida\tKvashnina")
    assert ring.username("@Zina_Kvash77") == ring.username("zina_kvash77")
    assert ring.phone("+7 (912) 345-67-89") == ring.phone("+79123456789")
    assert ring.email(" Zina.Kvash@Example.org") == ring.email("zina.kvash@example.org")
    assert ring.user(123) != ring.chat(123) and ring.name("abc") != ring.username("abc")
    assert pz.Keyring(KEY_B).user(123) != ring.user(123)
    number = ring.user_int(123)
    assert 2**62 <= number < 2**63 and number == 2**62 | (int(ring.user(123).split(":")[1], 16) >> 2)
    assert pz.fingerprint(KEY_A) != pz.fingerprint(KEY_B) and KEY_A.hex()[:16] != pz.fingerprint(KEY_A)


def test_key_files_round_trip_and_bad_keys_are_refused(tmp_path):
    path = tmp_path / "k.key"
    pz.write_key(path, KEY_A)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == KEY_A.hex() + "\n" and pz.load_key(path) == KEY_A
    (tmp_path / "raw.key").write_bytes(KEY_B)
    assert pz.load_key(tmp_path / "raw.key") == KEY_B
    (tmp_path / "bad.key").write_text("not a key")
    with pytest.raises(UsageError, match="is not a tgexport key"):
        pz.load_key(tmp_path / "bad.key")
    with pytest.raises(UsageError, match="does not exist"):
        pz.load_key(tmp_path / "missing.key")


# --- the policy is the schema ----------------------------------------------------------------------


def test_policy_is_read_from_the_schema_annotations():
    assert {rule.dotted for rule in pz.policy()} == set(pii_fields())
    rules = pz.Pseudonymizer(pz.PseudonymizeSpec(KEY_A, redact_text=True)).rules
    assert rules[-1].kind == "free_text"  # the text goes last: it reuses the names the fields found


def test_unknown_annotation_kinds_are_refused(monkeypatch):
    schema = {"properties": {"nickname": {"type": "string", "x-pii": "nickname"}}}
    monkeypatch.setattr(pz, "load_schema", lambda: schema)
    pz.policy.cache_clear()
    try:
        with pytest.raises(SchemaError, match="not known to the pseudonymizer"):
            pz.policy()
    finally:
        pz.policy.cache_clear()


def test_every_field_that_holds_a_planted_person_is_annotated(planted, tmp_path):
    """Converter outputs over every format: any field holding a planted identity needs `x-pii`."""
    out = tmp_path / "plain"
    run(planted, out, None)
    holding: set[str] = set()

    def walk(value, path: str) -> None:
        if isinstance(value, dict):
            for key, child in value.items():
                walk(child, f"{path}.{key}" if path else key)
        elif isinstance(value, list):
            for child in value:
                walk(child, path)
        elif value is not None and any(p.casefold() in str(value).casefold() for p in PLANTED):
            holding.add(path)

    for row in rows(out):
        walk(row, "")
    assert {"sender_id", "sender_name", "text", "mentions", "entities.user_id", "chat_title"} <= holding
    assert holding <= set(pii_fields()), f"fields holding persons without x-pii: {holding - set(pii_fields())}"


# --- end to end ---------------------------------------------------------------------------------------


def test_no_planted_identity_reaches_any_output_file(redacted):
    out, manifest = redacted
    totals = manifest["totals"]
    assert totals["quarantined"] >= 5 and totals["merged"] >= 1 and totals["rows"] >= 20
    assert {i["format"] for i in manifest["inputs"]} == set(pz.PUBLIC_ONLY_FORMATS) | {
        "tdesktop-json",
        "tdesktop-html",
        "telethon-json",
    }
    assert leaks(out, [*PLANTED, KEY_A.hex()]) == []
    assert len(leaks(out, PUBLIC)) > 0
    titles = {r["chat_title"] for r in rows(out)}
    assert {CHANNEL_TITLE, "Example Channel"} <= titles
    assert CHANNEL_USERNAME in {r["chat_username"] for r in rows(out)}
    rejects = (out / manifest["rejects"]["path"]).read_text(encoding="utf-8")
    assert "withheld" in rejects and "name:" in rejects and "user:" in rejects
    assert validate_dataset(out, None).ok


def test_without_redact_text_only_the_text_keeps_persons(planted, tmp_path):
    out = tmp_path / "ds"
    manifest = run(planted, out, KEY_A)
    assert "text" not in manifest["pseudonymization"]["fields"]
    for row in rows(out):
        rest = {k: v for k, v in row.items() if k not in ("text", "entities")}
        assert not [p for p in PLANTED if p.casefold() in repr(rest).casefold()], row["source_locator"]
        assert all(e["user_id"] is None or e["user_id"] >= 2**62 for e in row["entities"])
    assert any(USERNAME in r["text"] for r in rows(out))
    documents = [out / name for name in ("_manifest.json", "datapackage.json", "croissant.json", "_SUCCESS")]
    assert not [p for d in documents for p in PLANTED if p in d.read_text(encoding="utf-8")]


def test_same_key_gives_the_same_pseudonyms_another_key_others(planted, redacted, tmp_path):
    out, manifest = redacted
    again = run(planted, tmp_path / "again", KEY_A, redact_text=True)
    other = run(planted, tmp_path / "other", KEY_B, redact_text=True)
    assert [f["sha256"] for f in again["files"]] == [f["sha256"] for f in manifest["files"]]
    fields = ("sender_id", "sender_name", "chat_id", "chat_title", "text", "mentions")

    def persons(dataset: Path) -> list[tuple]:
        return sorted(tuple(repr(r[f]) for f in fields) for r in rows(dataset))

    assert persons(tmp_path / "again") == persons(out) != persons(tmp_path / "other")
    assert other["pseudonymization"]["key_fingerprint"] == pz.fingerprint(KEY_B)
    assert manifest["pseudonymization"]["key_fingerprint"] == pz.fingerprint(KEY_A)


def test_the_same_person_gets_one_pseudonym_in_every_format(redacted):
    out, _ = redacted
    ring = pz.Keyring(KEY_A)
    by_format: dict[str, list[dict]] = {}
    for row in rows(out):
        by_format.setdefault(row["source_format"], []).append(row)
    private = [r for r in rows(out) if r["chat_type"] == "private"]
    assert {r["source_format"] for r in private} == {"tdesktop-json", "telethon-json"}
    assert {r["chat_id"] for r in private} == {ring.user_int(USER_ID)}
    assert {r["sender_id"] for r in private} == {ring.user(USER_ID)}
    names = {r["sender_name"] for f in ("tdesktop-json", "tdesktop-html") for r in by_format[f] if r["sender_name"]}
    assert ring.name(SENDER) in names and ring.name(SENDER.upper()) in names
    mentioned = {
        (r["source_format"], e["user_id"]) for r in rows(out) for e in r["entities"] if e["type"] == "text_mention"
    }
    assert {f for f, _ in mentioned} >= {"tdesktop-json", "tgdataset"}
    assert {u for _, u in mentioned} == {ring.user_int(MENTIONED_ID)}
    spans = {
        r["text"][e["offset"] : e["offset"] + e["length"]]
        for r in rows(out)
        for e in r["entities"]
        if e["type"] == "text_mention"
    }
    assert spans == {ring.user(MENTIONED_ID)}


def test_manifest_and_documents_record_what_was_done(redacted):
    out, manifest = redacted
    info = manifest["pseudonymization"]
    assert info["applied"] and info["method"] == "HMAC-SHA256" and info["redact_text"] is True
    assert info["key_fingerprint"] == pz.fingerprint(KEY_A) and not info["pseudonymize_chats"]
    assert {"sender_id", "sender_name", "text", "entities.user_id", "mentions"} <= set(info["fields"])
    package = json.loads((out / "datapackage.json").read_text(encoding="utf-8"))
    assert package["tgexport:run"]["pseudonymization"] == info
    croissant = json.loads((out / "croissant.json").read_text(encoding="utf-8"))
    assert info["key_fingerprint"] in croissant["rai:personalSensitiveInformation"]


# --- --redact-text keeps entities on their spans -------------------------------------------------------

SPAN_CHECKS = {
    "mention": lambda s: s.startswith("@"),
    "text_mention": lambda s: re.fullmatch(r"(user|name):[0-9a-f]{16}", s),
    "email": lambda s: re.fullmatch(r"email:[0-9a-f]{16}", s),
    "phone_number": lambda s: re.fullmatch(r"phone:[0-9a-f]{16}", s),
    "hashtag": lambda s: s.startswith("#"),
    "cashtag": lambda s: s.startswith("$"),
    "url": lambda s: " " not in s and "." in s,
}


def test_redacted_text_keeps_every_entity_on_the_same_kind_of_span(planted, redacted, tmp_path):
    out, _ = redacted
    plain = tmp_path / "plain"
    run(planted, plain, None)
    before = {(r["source_file"], r["source_locator"]): r for r in rows(plain)}
    checked = 0
    for row in rows(out):
        text = row["text"]
        original = before[(row["source_file"], row["source_locator"])]
        assert [e["type"] for e in row["entities"]] == [e["type"] for e in original["entities"]]
        for new, old in zip(row["entities"], original["entities"], strict=True):
            span = text[new["offset"] : new["offset"] + new["length"]]
            assert new["offset"] + new["length"] <= len(text) and span, (row["source_locator"], new)
            old_span = original["text"][old["offset"] : old["offset"] + old["length"]]
            check = SPAN_CHECKS.get(new["type"])
            assert check(span) if check else (span == old_span or ":" in span), (new["type"], span)
            checked += 1
    assert checked >= 30


def test_apply_spans_moves_entities_with_the_replacements():
    text = "Call @ivan_p or +7 912 345 67 89 now"
    entities = [
        {"type": "bold", "offset": 0, "length": len(text)},
        {"type": "mention", "offset": 5, "length": 7},
        {"type": "italic", "offset": 8, "length": 10},  # starts and ends inside replaced spans
        {"type": "code", "offset": 33, "length": 3},
    ]
    new_text, moved = apply_spans(text, entities, [(5, 12, "@username:abc"), (16, 32, "phone:x")])
    assert new_text == "Call @username:abc or phone:x now"
    spans = [new_text[e["offset"] : e["offset"] + e["length"]] for e in moved]
    assert spans == [new_text, "@username:abc", "@username:abc or phone:x", "now"]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_apply_spans_never_splits_a_replacement_and_keeps_untouched_spans(data):
    text = data.draw(st.text(alphabet="ab c@", min_size=1, max_size=40))
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(text)), max_size=6))))
    pairs = [(a, b) for a, b in zip(cuts[::2], cuts[1::2], strict=False) if b > a]
    spans = [(a, b, data.draw(st.sampled_from(["X", "YYYYYY", ""])) or "Z") for a, b in pairs]
    entities = [
        {"type": "bold", "offset": a, "length": b - a}
        for a, b in data.draw(st.lists(st.tuples(st.integers(0, len(text)), st.integers(0, len(text))), max_size=5))
        if b >= a
    ]
    new_text, moved = apply_spans(text, entities, spans)
    for old, new in zip(entities, moved, strict=True):
        start, end = new["offset"], new["offset"] + new["length"]
        assert 0 <= start <= end <= len(new_text)
        touched = [s for s in spans if s[0] < old["offset"] + old["length"] and s[1] > old["offset"]]
        if not touched:
            assert new_text[start:end] == text[old["offset"] : old["offset"] + old["length"]]
        for a, _b, new_part in spans:  # no boundary falls strictly inside a replacement
            ns = a + sum(len(r) - (y - x) for x, y, r in spans if y <= a)
            assert not (ns < start < ns + len(new_part)) and not (ns < end < ns + len(new_part))


def test_service_texts_and_known_names_in_text_are_redacted():
    pseudo = pz.Pseudonymizer(pz.PseudonymizeSpec(KEY_A, redact_text=True))
    ring = pz.Keyring(KEY_A)
    service = _record(kind="service", text=f"{SENDER} invited {MENTIONED} and Bob Sample", chat_title="Talk")
    pseudo.record(service)
    assert service["text"] == f"{ring.name(SENDER)} invited {ring.name(MENTIONED)} and {ring.name('Bob Sample')}"
    message = _record(sender_name=SENDER, text=f"as {SENDER.upper()} said", chat_title="Talk")
    pseudo.record(message)
    assert message["text"] == f"as {ring.name(SENDER)} said" and message["sender_name"] == ring.name(SENDER)


def _record(**values) -> dict:
    from exporter.normalize import empty_record

    rec = empty_record()
    rec.update(post_id=1, chat_id=42, chat_type="supergroup", source_format="tdesktop-json", **values)
    return rec


def test_chats_flag_pseudonymizes_channels_too_and_records_stay_valid(planted, tmp_path):
    out = tmp_path / "ds"
    manifest = run(planted, out, KEY_A, ("chat", "year", "month"), chats=True, redact_text=True)
    assert manifest["pseudonymization"]["pseudonymize_chats"] is True
    ring = pz.Keyring(KEY_A)
    assert leaks(out, PLANTED) == []
    provenance = ("source_file", "source_locator", "sources")  # kept verbatim for traceability (documented)
    for row in rows(out):
        data = repr({k: v for k, v in row.items() if k not in provenance}).casefold()
        assert not [c for c in PUBLIC if c.casefold() in data], row["source_locator"]
    usernames = {r["chat_username"] for r in rows(out) if r["chat_username"]}
    assert ring.username(CHANNEL_USERNAME) in usernames and all(PSEUDONYM.match(u) for u in usernames)
    assert all(r["chat_id"] is None or r["chat_id"] >= 2**62 for r in rows(out))
    assert validate_dataset(out, None).ok  # `chat=username%3A…` folders: percent-encoded like pyarrow
    assert all(r["chat"] == r["chat_username"] for r in rows(out) if r["chat_username"])


def test_the_arrow_entry_point_matches_the_record_transform(redacted):
    spec = pz.PseudonymizeSpec(KEY_A, redact_text=True)
    records = [_record(sender_id=f"user{USER_ID}", sender_name=SENDER, text=f"hi @{USERNAME}", mentions=[USERNAME])]
    table = records_to_table([dict(r) for r in records])
    expected = [dict(r) for r in records]
    for record in expected:
        pz.Pseudonymizer(spec).record(record)
    got = pz.pseudonymize_batch(table, spec)
    assert got.schema == table.schema
    assert got.select(["sender_id", "sender_name", "text", "mentions"]).to_pylist() == [
        {k: e[k] for k in ("sender_id", "sender_name", "text", "mentions")} for e in expected
    ]
    batch = pz.pseudonymize_batch(table.to_batches()[0], spec)
    assert isinstance(batch, pa.RecordBatch) and batch.column("sender_id").to_pylist() == got["sender_id"].to_pylist()


# --- --append and failures ---------------------------------------------------------------------------


def test_append_needs_the_same_key_and_the_same_pseudonymization(planted, tmp_path):
    first, second = planted / "tdesktop-json", planted / "telethon-json"
    out = tmp_path / "ds"
    run(first, out, KEY_A)

    def append(key: bytes | None, **flags) -> None:
        spec = pz.PseudonymizeSpec(key, **flags) if key else None
        convert(ConvertRequest(inputs=[str(second)], output=out, append=True, jobs=1, pseudonymize=spec))

    with pytest.raises(UsageError, match="pseudonymized with another key"):
        append(KEY_B)
    with pytest.raises(UsageError, match="appending without --pseudonymize would add real identities"):
        append(None)
    with pytest.raises(UsageError, match="pseudonymized without --redact-text"):
        append(KEY_A, redact_text=True)
    append(KEY_A)
    manifest = json.loads((out / "_manifest.json").read_text(encoding="utf-8"))
    assert len(manifest["runs"]) == 2 and manifest["totals"]["merged"] >= 1
    senders = {r["sender_id"] for r in rows(out) if r["chat_id"] == 1777666555}
    assert senders == {pz.Keyring(KEY_A).user(USER_ID)}
    plain = tmp_path / "plain"
    run(first, plain, None)
    with pytest.raises(UsageError, match="is not pseudonymized"):
        convert(
            ConvertRequest(inputs=[str(second)], output=plain, append=True, pseudonymize=pz.PseudonymizeSpec(KEY_A))
        )


def test_fail_mode_errors_do_not_quote_persons(planted, tmp_path):
    spec = pz.PseudonymizeSpec(KEY_A)
    request = ConvertRequest(
        inputs=[str(planted / "tdesktop-json" / "group.json")], output=tmp_path / "ds", on_invalid="fail"
    )
    request.pseudonymize = spec
    with pytest.raises(Exception) as info:
        convert(request)
    assert "date_unixtime" in str(info.value) and not [p for p in PLANTED if p in str(info.value)]


def test_the_columnar_fast_path_is_bypassed_until_it_calls_the_pseudonymizer(tmp_path, monkeypatch):
    from helpers import good_messages, write_export

    from exporter import task
    from exporter.fastpath.runner import FastPathAbort

    calls: list[bool] = []

    def fast(spec, *args):
        calls.append(spec.pseudonymize is not None)
        raise FastPathAbort("the per-record path, for this test")

    monkeypatch.setenv("TGEXPORT_FASTPATH", "1")
    monkeypatch.setattr(task, "_convert_fast", fast)
    messages = [{**m, "from": SENDER, "from_id": f"user{USER_ID}"} for m in good_messages(10)]
    src = write_export(tmp_path / "result.json", messages, name="Talk")
    convert(ConvertRequest(inputs=[str(src)], output=tmp_path / "plain", jobs=1))
    request = ConvertRequest(inputs=[str(src)], output=tmp_path / "ds", jobs=1, pseudonymize=pz.PseudonymizeSpec(KEY_A))
    convert(request)
    assert calls == [False]  # only the plain run may take the fast path
    assert {r["sender_id"] for r in rows(tmp_path / "ds")} == {pz.Keyring(KEY_A).user(USER_ID)}
    assert leaks(tmp_path / "ds", [SENDER, str(USER_ID)]) == []
