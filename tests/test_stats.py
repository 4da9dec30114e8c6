"""The coverage report: planted gaps are found; warnings; JSON and text output."""

import json

from click.testing import CliRunner
from helpers import message, write_export

from exporter.cli import main
from exporter.coverage import coverage
from exporter.pipeline import ConvertRequest, convert

DAY = 86400
START = 1704067200  # 2024-01-01


def planted(tmp_path):
    ids = [*range(1, 11), *range(15, 21), *range(101, 106)]  # gaps 11–14 (4) and 21–100 (80)
    msgs = [message(i, START + i * DAY // 2) for i in ids]
    msgs.append(
        {
            **message(106, START + 60 * DAY),
            "type": "service",
            "action": "pin_message",
            "actor": "Example",
            "actor_id": "channel1234567890",
        }
    )
    src = write_export(tmp_path / "result.json", msgs)
    convert(ConvertRequest(inputs=[str(src)], output=tmp_path / "ds"))
    return tmp_path / "ds"


def test_coverage_finds_planted_gaps(tmp_path):
    report = coverage(planted(tmp_path))
    (chat,) = report["chats"]
    assert chat["chat"] == "c1234567890" and chat["posts"] == 22
    assert (chat["min_id"], chat["max_id"], chat["missing_ids"], chat["gap_count"]) == (1, 106, 84, 2)
    assert chat["largest_gaps"] == [{"from": 21, "to": 100, "missing": 80}, {"from": 11, "to": 14, "missing": 4}]
    assert chat["missing_share"] == round(84 / 106, 4)
    assert chat["service_share"] == round(1 / 22, 4)
    assert sum(chat["posts_per_month"].values()) == 22
    assert chat["null_share"]["views"] == 1.0 and "post_id" not in chat["null_share"]


def test_stats_command_text_and_json(tmp_path):
    root = planted(tmp_path)
    runner = CliRunner()
    text = runner.invoke(main, ["stats", str(root)])
    assert text.exit_code == 0 and "21–100 (80)" in text.stdout and "84 (79.2%)" in text.stdout
    data = json.loads(runner.invoke(main, ["stats", str(root), "--json"]).stdout)
    assert data["chats"][0]["gap_count"] == 2
    missing = runner.invoke(main, ["stats", str(tmp_path)])
    assert missing.exit_code == 2 and "not a tgexport dataset" in missing.stderr


def test_convert_prints_coverage_at_the_end(tmp_path):
    src = write_export(tmp_path / "result.json", [message(1, START), message(5, START + DAY)])
    result = CliRunner().invoke(main, ["convert", str(src), "-o", str(tmp_path / "ds")])
    assert result.exit_code == 0 and "coverage per chat" in result.stderr and "3 (60.0%)" in result.stderr


def test_full_account_left_chat_and_own_messages_warnings(tmp_path):
    def chat(name, kind, cid, sender):
        return {
            "name": name,
            "type": kind,
            "id": cid,
            "messages": [message(i, START + i, from_id=sender) for i in (1, 2, 3)],
        }

    doc = {
        "about": "x",
        "personal_information": {"user_id": 42},
        "chats": {
            "about": "x",
            "list": [
                chat("Group A", "private_supergroup", 11, "user42"),
                chat("Group B", "private_supergroup", 12, None),
            ],
        },
        "left_chats": {"about": "x", "list": [chat("Old group", "private_group", 13, "user42")]},
    }
    doc["chats"]["list"][1]["messages"] = [message(i, START + i, from_id=f"user{i}") for i in (1, 2, 3)]
    src = tmp_path / "result.json"
    src.write_text(json.dumps(doc), encoding="utf-8")
    convert(ConvertRequest(inputs=[str(src)], output=tmp_path / "ds"))
    warnings = coverage(tmp_path / "ds")["warnings"]
    assert any(w.startswith("c11: every message has the same sender") for w in warnings)
    assert any(w.startswith("c13: left chat") for w in warnings)
    assert not any(w.startswith("c12") for w in warnings)


def _gaps_reference(values: list[int]) -> dict:
    """The plain-Python definition the vectorized `_gaps` must match."""
    values = sorted(v for v in set(values) if v > 0)
    if not values:
        return {
            "min_id": None,
            "max_id": None,
            "missing_ids": 0,
            "missing_share": 0.0,
            "gap_count": 0,
            "largest_gaps": [],
        }
    gaps = [(b - a - 1, a + 1, b - 1) for a, b in zip(values, values[1:], strict=False) if b - a > 1]
    gaps.sort(key=lambda g: (-g[0], g[1]))
    span = values[-1] - values[0] + 1
    return {
        "min_id": values[0],
        "max_id": values[-1],
        "missing_ids": span - len(values),
        "missing_share": round((span - len(values)) / span, 4),
        "gap_count": len(gaps),
        "largest_gaps": [{"from": a, "to": b, "missing": n} for n, a, b in gaps[:10]],
    }


def test_gaps_match_the_plain_definition_on_random_ids():
    import random

    import pyarrow as pa
    import pyarrow.compute as pc

    from exporter.coverage import _gaps

    rng = random.Random(7)
    for trial in range(200):
        ids = [rng.randint(-3, 60 + trial) for _ in range(rng.randint(0, 40))]
        array = pc.unique(pa.array(ids, pa.int64())).sort()
        assert _gaps(array) == _gaps_reference(ids), ids


def test_chat_split_keeps_null_empty_and_odd_titles_apart():
    import pyarrow as pa

    from exporter.coverage import _split_by_chat

    table = pa.table(
        {
            "chat_id": pa.array([None, None, None, 5, 5, None], pa.int64()),
            "chat_username": pa.array([None, None, None, None, "news", None], pa.string()),
            "chat_title": pa.array(["a\x01b", "", None, "x", "x", "a\x01b"], pa.string()),
            "n": list(range(6)),
        }
    )
    got = {key: rows.column("n").to_pylist() for key, rows in _split_by_chat(table, {})}
    assert got == {"title:a\x01b": [0, 5], "(unknown chat)": [1, 2], "c5": [3], "news": [4]}
    got = {key: rows.column("n").to_pylist() for key, rows in _split_by_chat(table, {5: "news"})}
    assert got["news"] == [3, 4]


def test_null_shares_read_only_the_nullable_columns_yet_match_a_full_read(tmp_path):
    """The report skips the never-null columns (text, entities, sources…): the shares it gives
    are those of every column of the dataset, read whole."""
    import pyarrow.dataset as ds

    from exporter.coverage import report_columns
    from exporter.schema import arrow_schema

    root = planted(tmp_path)
    skipped = [f for f in arrow_schema() if f.name not in report_columns()]
    assert {"text", "entities", "sources"} <= {f.name for f in skipped}
    assert not any(f.nullable for f in skipped)
    table = ds.dataset(root / "posts", format="parquet", partitioning="hive").to_table()
    whole = {name: round(table.column(name).null_count / table.num_rows, 4) for name in arrow_schema().names}
    (chat,) = coverage(root)["chats"]
    assert chat["null_share"] == {name: share for name, share in sorted(whole.items()) if share}
    assert {"media", "poll", "edit_date"} <= set(chat["null_share"])


def test_report_reads_files_ahead_in_order_and_equals_one_at_a_time(tmp_path, monkeypatch):
    """Files read on threads are folded in manifest order: the report is the serial one."""
    from exporter import coverage as cov

    msgs = [message(i, START + i * DAY * 7) for i in range(1, 200)]  # many monthly partitions
    src = write_export(tmp_path / "result.json", msgs)
    convert(ConvertRequest(inputs=[str(src)], output=tmp_path / "ds"))
    paths = sorted((tmp_path / "ds" / "posts").rglob("*.parquet"))
    assert len(paths) > 10
    ahead = [t.column("post_id").to_pylist() for t in cov._read_ahead(paths, ["post_id"])]
    assert ahead == [cov.read_data_file(p, ["post_id"]).column("post_id").to_pylist() for p in paths]
    threaded = coverage(tmp_path / "ds")
    monkeypatch.setattr(cov, "READ_AHEAD", 1)
    assert coverage(tmp_path / "ds") == threaded
