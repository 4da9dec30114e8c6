"""Batch validation (exporter.fastpath.checks) agrees with the JSON Schema, record by record.

Valid records from the fixtures, and the same records broken on purpose (every kind of keyword
the schema uses: required non-null, enum, pattern, minimum, date range, minItems), are put in
one Arrow batch; the batch checks must accept exactly the records `jsonschema` accepts (and never
one jsonschema-rs rejects).
"""

from __future__ import annotations

import copy
import io
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from golden import FIXTURES
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import validate
from exporter.arrowbuild import records_to_table
from exporter.converters import get
from exporter.converters.base import ConvertOptions, SourceRef
from exporter.errors import SchemaError
from exporter.fastpath import checks
from exporter.normalize import iso_utc, stamp_provenance
from exporter.schema import load_schema

REFERENCE = jsonschema.Draft202012Validator(
    load_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def fixture_records() -> list[dict[str, Any]]:
    out = []
    for path in sorted((FIXTURES / "tdesktop-json").glob("*.json")):
        if path.name.endswith(".expected.json") or path.stem in ("local_dates_tz", "malformed"):
            continue
        data = path.read_bytes()
        source = SourceRef(path.name, "a" * 64, len(data))
        options = ConvertOptions(tz=UTC, tz_name="UTC")
        for item in get("tdesktop-json").iter_items(io.BytesIO(data), source, options):
            if item.record is not None and not item.problems:
                stamp_provenance(item.record, "tdesktop-json", path.name, "a" * 64, item.locator, "0123456789abcdef")
                out.append(item.record)
    return out


RECORDS = fixture_records()


def _entity(rec: dict[str, Any], **change: Any) -> dict[str, Any]:
    rec["entities"] = [
        {"type": "bold", "offset": 0, "length": 1, "url": None, "user_id": None, "custom_emoji_id": None, **change}
    ]
    return rec


def _reaction(rec: dict[str, Any], **change: Any) -> dict[str, Any]:
    rec["reactions"] = [{"kind": "emoji", "emoji": "👍", "custom_emoji_id": None, "count": 1, **change}]
    return rec


def _media(rec: dict[str, Any], **change: Any) -> dict[str, Any]:
    media = dict.fromkeys(["file_name", "mime_type", "file_size", "width", "height", "duration_s", "sticker_emoji"])
    rec["media"] = {**media, "available": True, **change}
    return rec


# One mutation per kind of check; each yields a record that is either valid or not per the schema.
MUTATIONS = {
    "kind enum": lambda r: {**r, "kind": "story"},
    "chat_type enum": lambda r: {**r, "chat_type": "forum"},
    "chat_type null ok": lambda r: {**r, "chat_type": None},
    "media_type enum": lambda r: {**r, "media_type": "hologram"},
    "source_format enum": lambda r: {**r, "source_format": "fax"},
    "sender pattern": lambda r: {**r, "sender_id": "user-12"},
    "sender pseudonym ok": lambda r: {**r, "sender_id": "p:0a1b"},
    "sender trailing newline": lambda r: {**r, "sender_id": "user12\n"},
    "username pattern": lambda r: {**r, "chat_username": "Has Caps"},
    "username ok": lambda r: {**r, "chat_username": "good_name_1"},
    "run_id pattern": lambda r: {**r, "run_id": "xyz"},
    "sha pattern": lambda r: {**r, "source_sha256": "A" * 64},
    "views minimum": lambda r: {**r, "views": -1},
    "views zero ok": lambda r: {**r, "views": 0},
    "reactions_total minimum": lambda r: {**r, "reactions_total": -5},
    "entity type enum": lambda r: _entity(r, type="sparkle"),
    "entity offset minimum": lambda r: _entity(r, offset=-1),
    "entity custom emoji pattern": lambda r: _entity(r, custom_emoji_id="12a"),
    "entity custom emoji ok": lambda r: _entity(r, custom_emoji_id="12"),
    "reaction kind enum": lambda r: _reaction(r, kind="like"),
    "reaction count minimum": lambda r: _reaction(r, count=-2),
    "reaction emoji id pattern": lambda r: _reaction(r, kind="custom_emoji", emoji=None, custom_emoji_id="x"),
    "media width minimum": lambda r: _media(r, width=-1),
    "media ok": lambda r: _media(r, width=10, file_name="a.jpg"),
    "date before year 1000": lambda r: {**r, "date": "0999-12-31T23:59:59Z"},
    "date ok": lambda r: {**r, "date": "1000-01-01T00:00:00Z"},
    "sources empty": lambda r: {**r, "sources": []},
    "poll question missing": lambda r: {
        **r,
        "poll": {"question": None, "answers": [], "total_voters": None, "closed": None, "quiz": None},
    },
    "poll answer voters minimum": lambda r: {
        **r,
        "poll": {
            "question": "q",
            "answers": [{"text": "a", "voters": -1}],
            "total_voters": 1,
            "closed": True,
            "quiz": None,
        },
    },
}


# Stricter on purpose (see checks.py): a timestamp before year 1000 never comes out of
# normalize.iso_utc as four digits, so no record with one can pass the per-record path either.
STRICTER = {"date before year 1000"}


def reference_valid(record: dict[str, Any]) -> bool:
    return REFERENCE.is_valid(record) and validate.is_valid(record)


def batch_valid(records: list[dict[str, Any]]) -> list[bool]:
    return checks.valid_rows(records_to_table(records)).tolist()


def test_fixture_records_all_pass() -> None:
    assert RECORDS and all(batch_valid(RECORDS))


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_each_mutation_judged_like_the_schema(name: str) -> None:
    records = [MUTATIONS[name](copy.deepcopy(r)) for r in RECORDS[:5]]
    want = [reference_valid(r) and name not in STRICTER for r in records]
    assert batch_valid(records) == want


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(RECORDS) - 1), st.sampled_from(sorted(MUTATIONS) + [None])), max_size=25))
def test_mixed_batches_agree_row_by_row(picks: list[tuple[int, str | None]]) -> None:
    """Valid and invalid records in one batch: every row judged on its own."""
    records = [copy.deepcopy(RECORDS[i]) if m is None else MUTATIONS[m](copy.deepcopy(RECORDS[i])) for i, m in picks]
    if not records:
        return
    assert batch_valid(records) == [
        reference_valid(r) and m not in STRICTER for r, (_, m) in zip(records, picks, strict=True)
    ]


def test_checks_cover_every_keyword_in_the_schema() -> None:
    keywords = {c.keyword for c in checks.batch_checks()}
    assert {"not_null", "enum", "pattern", "minimum", "format", "minItems"} <= keywords
    paths = {c.path for c in checks.batch_checks()}
    assert {"entities/*/type", "reactions/*/count", "media/width", "poll/answers/*/voters", "sources/*/sha256"} <= paths


def test_unknown_schema_keyword_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    schema = copy.deepcopy(load_schema())
    schema["properties"]["text"]["maxLength"] = 10
    monkeypatch.setattr(checks, "load_schema", lambda: schema)
    checks.batch_checks.cache_clear()
    try:
        with pytest.raises(SchemaError):
            checks.batch_checks()
    finally:
        checks.batch_checks.cache_clear()


def test_dates_representable_as_rfc3339_pass() -> None:
    record = copy.deepcopy(RECORDS[0])
    record["date"] = iso_utc(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
    assert batch_valid([record]) == [True] == [reference_valid(record)]
    table = records_to_table([record])
    assert table.column("date").type == pa.timestamp("us", tz="UTC")


def _sha(rec: dict[str, Any], value: str) -> dict[str, Any]:
    rec["source_sha256"] = value
    rec["sources"][0]["sha256"] = value
    return rec


LARGE_CASES = {
    "as_is": lambda i, r: r,
    "constant_bad_sha": lambda i, r: _sha(r, "Z" * 64),
    "constant_good_sha": lambda i, r: _sha(r, "0" * 64),
    "one_bad_sha": lambda i, r: _sha(r, "Z" * 64) if i == 70 else r,
    "same_length_differing": lambda i, r: _sha(r, f"{i:064x}" if i != 99 else "g" * 64),
    "constant_bad_kind": lambda i, r: {**r, "kind": "bogus"},
    "constant_null_run_id": lambda i, r: {**r, "run_id": None},
    "constant_empty_chat_username": lambda i, r: {**r, "chat_username": ""},
    # Post links differ in their trailing digits only: the `uri` check folds them (_uri_failing).
    "links_differing_in_digits": lambda i, r: {**r, "url": f"https://t.me/harbor_city/{i}"},
    "one_bad_link_among_digits": lambda i, r: {
        **r,
        "url": f"https://t.me/harbor city/{i}" if i == 70 else f"https://t.me/harbor_city/{i}",
    },
    "links_some_null_some_without_digits": lambda i, r: {
        **r,
        "url": None if i % 3 == 0 else "https://t.me/harbor_city/" if i % 3 == 1 else f"https://t.me/c/17{i}/{i}",
    },
}


ALL_VALID = {"as_is", "constant_good_sha", "links_differing_in_digits", "links_some_null_some_without_digits"}


@pytest.mark.parametrize("case", sorted(LARGE_CASES))
def test_batches_above_the_distinct_threshold_agree(case: str) -> None:
    """Batches past 64 rows take the constant-column and distinct-value shortcuts: same verdicts."""
    records = [LARGE_CASES[case](i, copy.deepcopy(RECORDS[i % len(RECORDS)])) for i in range(100)]
    want = [reference_valid(r) for r in records]
    assert batch_valid(records) == want
    assert (case in ALL_VALID) == all(want)


URI_CHECK = next(c for c in checks.batch_checks() if c.keyword == "format" and c.argument == "uri")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(["", "https://", "http://", "https://t.me/", "https://t.me/c/", "ftp://", "https://a b/"]),
        min_size=1,
        max_size=3,
    ),
    st.lists(st.text(alphabet="a/.-_ %é~:0123456789", max_size=6), min_size=1, max_size=3),
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 2), st.one_of(st.none(), st.from_regex(r"\A[0-9]{0,4}\Z"))),
        min_size=65,
        max_size=200,
    ),
)
def test_folding_trailing_digits_gives_the_uri_verdicts_of_the_regex(
    schemes: list[str], middles: list[str], rows: list[tuple[int, int, str | None]]
) -> None:
    """`_uri_failing` (values judged by their stem + "0") agrees with RE2 on every value."""
    values = [
        None if digits is None else schemes[a % len(schemes)] + middles[b % len(middles)] + digits
        for a, b, digits in rows
    ]
    array = pa.array(values, pa.string())
    want = checks.to_numpy(pc.fill_null(checks._failing(URI_CHECK, array), False))
    folded = checks._uri_failing(URI_CHECK, array)
    assert folded is not None  # at most 9 stems (and one null) among >= 65 values
    assert folded.tolist() == want.tolist()


def test_uri_folding_gives_way_when_stems_do_not_repeat() -> None:
    array = pa.array([f"https://t.me/chan{i}x/1" for i in range(100)])
    assert checks._uri_failing(URI_CHECK, array) is None
    assert not checks._failing_values(URI_CHECK, array).any()


def test_a_constant_columns_verdict_is_remembered_per_check_and_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """Provenance columns repeat one value per input: each (check, value) is judged once."""
    check = next(c for c in checks.batch_checks() if c.path == "source_sha256" and c.keyword == "pattern")
    calls: list[int] = []
    real = checks._failing
    monkeypatch.setattr(checks, "_failing", lambda c, a: calls.append(len(a)) or real(c, a))
    monkeypatch.setattr(checks, "_VERDICTS", {})
    good, bad = pa.repeat(pa.scalar("0" * 64), 100), pa.repeat(pa.scalar("Z" * 64), 100)
    assert not checks._failing_values(check, good).any()
    assert checks._failing_values(check, bad).all()
    assert not checks._failing_values(check, good).any() and checks._failing_values(check, bad).all()
    assert calls == [1, 1]  # one value each, and only the first time
    other = checks.Check(check.path, check.keyword, "^Z+$")  # another argument: judged anew
    assert not checks._failing_values(other, bad).any() and calls == [1, 1, 1]


@pytest.mark.parametrize(
    ("keyword", "argument", "values", "holds"),
    [
        ("maximum", 10, [1, 10, None], True),
        ("maximum", 10, [1, 11, None], False),
        ("minimum", 0, [0, 5, None], True),
        ("minimum", 0, [3, -1], False),
        ("minimum", 0, [None, None], True),
        ("not_null", None, [1, 2], True),
        ("not_null", None, [1, None], False),
        ("pattern", "^a$", ["a"], False),  # no whole-column proof: the mask decides
    ],
)
def test_whole_column_proofs_agree_with_the_row_masks(keyword: str, argument: Any, values: list, holds: bool) -> None:
    """`_holds_for_all` skips a check only when no row fails it (today's maximums are int64's
    own limit, skipped by `_implied`; this covers the bound any future schema may set)."""
    array = pa.array(values, pa.string() if keyword == "pattern" else pa.int64())
    check = checks.Check("x", keyword, argument)
    assert checks._holds_for_all(check, array) is holds
    if holds:
        assert not checks._failing_values(check, array).any()
    elif keyword != "pattern":
        assert checks._failing_values(check, array).any()
