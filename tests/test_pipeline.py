"""Pipeline guarantees: byte-identical reruns, --jobs N == --jobs 1, counts that add up."""

import hashlib
import json
from pathlib import Path

import pytest
from helpers import good_messages, write_export

from exporter.pipeline import ConvertRequest, convert


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "posts").rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("to", ["parquet", "jsonl", "jsonl.zst"])
def test_same_input_twice_gives_byte_identical_data_files(tmp_path, to):
    src = write_export(tmp_path / "result.json", good_messages(50))
    a = convert(ConvertRequest(inputs=[str(src)], output=tmp_path / "a", to=to))
    b = convert(ConvertRequest(inputs=[str(src)], output=tmp_path / "b", to=to))
    assert digests(tmp_path / "a") == digests(tmp_path / "b") != {}
    assert a.model.run_id == b.model.run_id


def test_jobs_two_equals_jobs_one(tmp_path):
    inputs = [
        str(write_export(tmp_path / f"in{i}" / "result.json", good_messages(30 + i), chat_id=1000 + i))
        for i in range(3)
    ]
    one = convert(ConvertRequest(inputs=inputs, output=tmp_path / "one", jobs=1))
    two = convert(ConvertRequest(inputs=inputs, output=tmp_path / "two", jobs=2))
    assert digests(tmp_path / "one") == digests(tmp_path / "two")
    assert one.model.totals() == two.model.totals()
    m1 = json.loads((tmp_path / "one" / "_manifest.json").read_text())
    m2 = json.loads((tmp_path / "two" / "_manifest.json").read_text())
    assert m1["files"] == m2["files"] and m1["inputs"] == m2["inputs"]


def test_identical_inputs_are_converted_once(tmp_path):
    src = write_export(tmp_path / "a" / "result.json", good_messages(5))
    copy = tmp_path / "b" / "result.json"
    copy.parent.mkdir()
    copy.write_bytes(src.read_bytes())
    report = convert(ConvertRequest(inputs=[str(src), str(copy)], output=tmp_path / "ds"))
    assert report.model.totals()["written"] == 5
    assert report.model.skipped_inputs == [{"path": str(copy), "reason": f"same bytes as {src}"}]


def test_folder_walk_skips_unrelated_files_with_reason(tmp_path):
    folder = tmp_path / "dump"
    write_export(folder / "ChatExport" / "result.json", good_messages(4))
    (folder / "ChatExport" / "notes.txt").write_text("my notes")
    (folder / "ChatExport" / "photos").mkdir()
    (folder / "ChatExport" / "photos" / "p.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    report = convert(ConvertRequest(inputs=[str(folder)], output=tmp_path / "ds"))
    assert report.model.totals()["written"] == 4
    reasons = {s["path"].rsplit("/", 1)[-1]: s["reason"] for s in report.model.skipped_inputs}
    assert set(reasons) == {"notes.txt", "p.jpg"}
    assert reasons["p.jpg"].startswith("not a recognised Telegram dump (binary data")


def test_manifest_lists_inputs_files_and_partitions(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    src = write_export(tmp_path / "result.json", good_messages(20))
    convert(ConvertRequest(inputs=[str(src)], output=tmp_path / "ds", command=["tgexport", "convert", str(src)]))
    root = tmp_path / "ds"
    manifest = json.loads((root / "_manifest.json").read_text())
    assert manifest["started_at"] == manifest["finished_at"] == "2023-11-14T22:13:20Z"
    assert manifest["inputs"][0]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    for entry in manifest["files"]:
        data = (root / entry["path"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
    assert sum(p["rows"] for p in manifest["partitions"]) == manifest["totals"]["rows"] == 20
    assert not Path(manifest["command"][2]).is_absolute()
    success = json.loads((root / "_SUCCESS").read_text())
    assert success["manifest"]["sha256"] == hashlib.sha256((root / "_manifest.json").read_bytes()).hexdigest()
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []


def test_command_line_is_redacted():
    from exporter.manifest import redact_command

    cmd = redact_command(
        ["tgexport", "convert", "/abs/x.json", "--key", "s3cret", "--s3-endpoint", "http://user:pw@127.0.0.1:9000"],
        cwd=Path("/abs"),
    )
    assert cmd == [
        "tgexport",
        "convert",
        "x.json",
        "--key",
        "<redacted>",
        "--s3-endpoint",
        "http://<redacted>@127.0.0.1:9000",
    ]
