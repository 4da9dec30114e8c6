"""Merging one post seen in several dumps; appending to a dataset; the documented precedence."""

import base64
import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from helpers import message, write_export

from exporter.merge import merge_records
from exporter.normalize import empty_record, stamp_provenance
from exporter.pipeline import ConvertRequest, convert

PART = ds.partitioning(pa.schema([("year", pa.int16()), ("month", pa.int8())]), flavor="hive")
CHAT = 1234567890
TS = 1709457300  # 2024-03-03T09:15:00Z


def record(fmt, post_id=1, **fields):
    rec = empty_record()
    rec.update({"post_id": post_id, "chat_id": CHAT, "date": "2024-03-03T09:15:00Z", **fields})
    stamp_provenance(rec, fmt, f"{fmt}.file", hashlib.sha256(fmt.encode()).hexdigest(), f"#{post_id}", "0" * 16)
    return rec


def test_exact_utc_date_beats_local_time_and_undated():
    html = record("tdesktop-html", date="2024-03-03T10:15:00Z")
    mirror = record("mirror", date=None)
    telethon = record("telethon-json", date="2024-03-03T09:15:00Z")
    merged, primary = merge_records([html, mirror, telethon])
    assert primary == 2 and merged["date"] == "2024-03-03T09:15:00Z"
    assert [s["format"] for s in merged["sources"]] == ["mirror", "tdesktop-html", "telethon-json"]


def test_exact_counts_beat_rounded_and_highest_wins_among_equals():
    rounded = record(
        "tme-html",
        views=1200,
        counts_rounded=True,
        reactions_total=30,
        reactions=[{"kind": "emoji", "emoji": "👍", "custom_emoji_id": None, "count": 30}],
    )
    exact = record("telethon-json", views=1187, forwards=4, reactions_total=None)
    merged, _ = merge_records([rounded, exact])
    assert merged["views"] == 1187 and merged["forwards"] == 4
    assert merged["reactions_total"] == 30 and merged["counts_rounded"] is True  # reactions only known rounded
    later = record("telethon-json", views=1500)
    merged, _ = merge_records([exact, later])
    assert merged["views"] == 1500 and merged["counts_rounded"] is False


def test_latest_edit_and_richest_text():
    plain = record("snscrape-jsonl", text="Read the report #update", edit_date=None, is_edited=None)
    rich = record(
        "tdesktop-json",
        text="Read\nthe report #update",
        is_edited=True,
        edit_date="2024-03-03T10:00:00Z",
        entities=[
            {"type": "hashtag", "offset": 16, "length": 7, "url": None, "user_id": None, "custom_emoji_id": None}
        ],
        hashtags=["update"],
    )
    omitted = record("tme-html", text="", content_omitted=True, is_edited=True, edit_date="2024-03-04T10:00:00Z")
    merged, _ = merge_records([plain, rich, omitted])
    assert merged["text"] == "Read\nthe report #update" and merged["hashtags"] == ["update"]
    assert merged["content_omitted"] is False
    assert merged["edit_date"] == "2024-03-04T10:00:00Z" and merged["is_edited"] is True


def tme_page(posts):
    items = []
    for post_id, views, reaction_count in posts:
        view = base64.urlsafe_b64encode(json.dumps({"c": -CHAT, "p": str(post_id), "t": 1717000000}).encode())
        items.append(
            f'<div class="tgme_widget_message_wrap js-widget_message_wrap"><div class="tgme_widget_message '
            f'js-widget_message" data-post="ExampleChannel/{post_id}" data-view="{view.decode().rstrip("=")}">'
            '<div class="tgme_widget_message_bubble"><div class="tgme_widget_message_author accent_color">'
            '<a class="tgme_widget_message_owner_name" href="https://t.me/ExampleChannel"><span dir="auto">'
            'Example Channel</span></a></div><div class="tgme_widget_message_text js-message_text" dir="auto">'
            f'post {post_id} text</div><div class="tgme_widget_message_reactions js-message_reactions">'
            f'<span class="tgme_reaction"><i class="emoji"><b>👍</b></i>{reaction_count}</span></div>'
            '<div class="tgme_widget_message_footer compact js-message_footer"><div class="tgme_widget_message_info '
            f'short js-message_info"><span class="tgme_widget_message_views">{views}</span><span class="tgme_widget'
            f'_message_meta"><a class="tgme_widget_message_date" href="https://t.me/ExampleChannel/{post_id}">'
            f'<time datetime="2024-03-03T09:15:00+00:00" class="time">09:15</time></a></span></div></div>'
            "</div></div></div>"
        )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Example Channel – Telegram</title>'
        '<meta property="og:url" content="https://t.me/s/ExampleChannel"></head><body class="widget_frame_base '
        'tgme_webpreview_body"><main class="tgme_main"><section class="tgme_right_column"><div class="tgme_channel_'
        'info"><div class="tgme_channel_info_header"><div class="tgme_channel_info_header_title"><span dir="auto">'
        'Example Channel</span></div><div class="tgme_channel_info_header_username"><a href="https://t.me/Example'
        'Channel">@ExampleChannel</a></div></div></div></section><section class="tgme_channel_history js-message_'
        'history">' + "".join(items) + "</section></main></body></html>"
    )


def snscrape_lines(posts):
    return "".join(
        json.dumps(
            {
                "_type": "snscrape.modules.telegram.TelegramPost",
                "url": f"https://t.me/s/examplechannel/{p}",
                "date": "2024-03-03T09:15:00+00:00",
                "content": f"post {p} text",
                "outlinks": [],
                "views": [views, 100],
            }
        )
        + "\n"
        for p, views in posts
    )


def three_sources(folder: Path) -> list[str]:
    desktop = [
        message(p, TS, [{"type": "bold", "text": f"post {p}"}, " text"], edited="x", edited_unixtime=str(TS + 60))
        for p in (201, 202, 203)
    ]
    a = write_export(folder / "desktop" / "result.json", desktop, chat_id=CHAT)
    b = folder / "tme" / "page.html"
    b.parent.mkdir(parents=True)
    b.write_text(tme_page([(201, "1.2K", 7), (202, "2.5K", "1.1K")]), encoding="utf-8")
    c = folder / "sns" / "posts.jsonl"
    c.parent.mkdir(parents=True)
    c.write_text(snscrape_lines([(202, 2600), (203, 900), (204, 50)]), encoding="utf-8")
    return [str(a), str(b), str(c)]


def rows(root: Path) -> dict[int, dict]:
    table = ds.dataset(root / "posts", format="parquet", partitioning=PART).to_table()
    out = {}
    for row in table.to_pylist():
        assert row["post_id"] not in out, "one record per post"
        out[row["post_id"]] = row
    return out


def test_same_channel_from_three_formats_merges_into_one_record_per_post(tmp_path):
    inputs = three_sources(tmp_path / "in")
    report = convert(ConvertRequest(inputs=inputs, output=tmp_path / "ds"))
    totals = report.model.totals()
    assert totals["read"] == 3 + 2 + 3 and totals["written"] == 4 and totals["merged"] == 4
    assert totals["read"] == totals["written"] + totals["merged"] + totals["quarantined"] + totals["skipped"]
    got = rows(tmp_path / "ds")
    assert sorted(got) == [201, 202, 203, 204]
    assert {r["chat_id"] for r in got.values()} == {CHAT}  # username-only rows joined through the t.me page
    assert {r["chat_username"] for r in got.values()} == {"examplechannel"}
    p202 = got[202]
    assert p202["source_format"] == "tdesktop-json"  # exact date and richest text
    assert p202["entities"][0]["type"] == "bold"
    assert p202["views"] == 2600 and p202["counts_rounded"] is True  # both rounded: the highest
    assert p202["reactions_total"] == 1100  # only the t.me page has reactions
    assert p202["url"] == "https://t.me/examplechannel/202"
    assert [s["format"] for s in p202["sources"]] == ["snscrape-jsonl", "tdesktop-json", "tme-html"]
    assert got[201]["views"] == 1200 and len(got[201]["sources"]) == 2
    assert got[204]["sources"][0]["format"] == "snscrape-jsonl" and len(got[204]["sources"]) == 1
    manifest = json.loads((tmp_path / "ds" / "_manifest.json").read_text())
    assert sum(i["items"]["merged"] for i in manifest["inputs"]) == 4


def test_identical_duplicates_inside_one_source_are_counted_not_written_twice(tmp_path):
    msgs = [message(1, TS), message(2, TS + 10), message(2, TS + 10)]
    src = write_export(tmp_path / "result.json", msgs)
    report = convert(ConvertRequest(inputs=[str(src)], output=tmp_path / "ds"))
    assert report.model.totals()["written"] == 2 and report.model.totals()["merged"] == 1
    assert sorted(rows(tmp_path / "ds")) == [1, 2]


def contents(root: Path) -> list[dict]:
    table = ds.dataset(root / "posts", format="parquet", partitioning=PART).to_table()
    out = []
    for row in sorted(table.to_pylist(), key=lambda r: r["post_id"]):
        row.pop("run_id")
        out.append(row)
    return out


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 0, 2)])
def test_appending_in_any_order_gives_the_same_contents(tmp_path, order):
    inputs = three_sources(tmp_path / "in")
    convert(ConvertRequest(inputs=inputs, output=tmp_path / "together"))
    first, *rest = [inputs[i] for i in order]
    convert(ConvertRequest(inputs=[first], output=tmp_path / "grown"))
    for extra in rest:
        convert(ConvertRequest(inputs=[extra], output=tmp_path / "grown", append=True))
    assert contents(tmp_path / "grown") == contents(tmp_path / "together")
    manifest = json.loads((tmp_path / "grown" / "_manifest.json").read_text())
    assert len(manifest["runs"]) == 3 and len(manifest["inputs"]) == 3
    totals = manifest["totals"]
    assert totals["read"] == totals["written"] + totals["merged"] + totals["quarantined"] + totals["skipped"]
    assert totals["rows"] == 4 == totals["written"]
    assert not [p for p in (tmp_path / "grown").iterdir() if p.name.startswith(".")]


def snapshot(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_appending_the_same_dump_twice_changes_nothing(tmp_path):
    inputs = three_sources(tmp_path / "in")
    convert(ConvertRequest(inputs=inputs[:1], output=tmp_path / "ds"))
    convert(ConvertRequest(inputs=inputs[1:2], output=tmp_path / "ds", append=True))
    before = snapshot(tmp_path / "ds")
    report = convert(ConvertRequest(inputs=inputs[1:2], output=tmp_path / "ds", append=True))
    assert snapshot(tmp_path / "ds") == before
    assert report.model.skipped_inputs[0]["reason"].startswith("already in the dataset (run ")
    assert report.exit_code == 0


def test_append_rewrites_only_affected_files(tmp_path):
    early = [message(p, 1704067200 + p * 86400 * 40) for p in range(1, 4)]  # Jan, Feb, Apr 2024
    src = write_export(tmp_path / "a" / "result.json", early)
    convert(ConvertRequest(inputs=[str(src)], output=tmp_path / "ds"))
    before = snapshot(tmp_path / "ds")
    later = [message(3, 1704067200 + 3 * 86400 * 40, "edited text, longer than before"), message(9, 1735689600)]
    src2 = write_export(tmp_path / "b" / "result.json", later)
    convert(ConvertRequest(inputs=[str(src2)], output=tmp_path / "ds", append=True))
    after = snapshot(tmp_path / "ds")
    unchanged = [p for p in before if p.startswith("posts/") and after.get(p) == before[p]]
    changed = [p for p in before if p.startswith("posts/") and after.get(p) != before[p]]
    assert len(unchanged) == 2 and len(changed) == 1
    got = rows(tmp_path / "ds")
    assert got[3]["text"] == "edited text, longer than before" and sorted(got) == [1, 2, 3, 9]


def test_append_refuses_other_options_and_non_datasets(tmp_path):
    from exporter.errors import UsageError

    src = write_export(tmp_path / "result.json", [message(1)])
    with pytest.raises(UsageError, match="not a tgexport dataset"):
        convert(ConvertRequest(inputs=[str(src)], output=tmp_path, append=True))
    convert(ConvertRequest(inputs=[str(src)], output=tmp_path / "ds"))
    with pytest.raises(UsageError, match="holds parquet files"):
        convert(ConvertRequest(inputs=[str(src)], output=tmp_path / "ds", append=True, to="jsonl"))


def test_small_buckets_and_chunks_give_the_same_result(tmp_path, monkeypatch):
    import exporter.merge as merge

    inputs = three_sources(tmp_path / "in")
    convert(ConvertRequest(inputs=inputs, output=tmp_path / "normal"))
    monkeypatch.setattr(merge, "BUCKET_ROWS", 3)
    monkeypatch.setattr(merge, "GROUP_CHUNK", 1)
    convert(ConvertRequest(inputs=inputs, output=tmp_path / "small"))
    assert contents(tmp_path / "small") == contents(tmp_path / "normal")
