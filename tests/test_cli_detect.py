"""`tgexport detect`: per input unit, format, confidence and an item estimate; exit codes; no writing."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile
from pathlib import Path

from click.testing import CliRunner
from helpers import export, good_messages, write_export

from exporter.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def snapshot(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


def folder(tmp_path: Path) -> Path:
    root = tmp_path / "dumps"
    write_export(root / "result.json", good_messages(12))
    data = json.dumps(export(good_messages(5), chat_id=77)).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x/result.json", data)
        zf.writestr("notes.txt", "my notes")
    (root / "a.zip").write_bytes(buf.getvalue())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        link = tarfile.TarInfo("link.json")
        link.type, link.linkname = tarfile.SYMTYPE, "../../etc/passwd"
        tf.addfile(link)
    (root / "b.tgz").write_bytes(buf.getvalue())
    (root / "c.json.gz").write_bytes(gzip.compress(data))
    return root


def test_detect_prints_one_line_per_unit_and_writes_nothing(tmp_path):
    root = folder(tmp_path)
    before = snapshot(tmp_path)
    result = run("detect", str(root))
    assert result.exit_code == 0
    assert snapshot(tmp_path) == before
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["FORMAT", "CONF", "ITEMS", "SIZE", "INPUT"]
    rows = {line.split("  [")[0].split()[-1]: line for line in lines[1:]}
    assert list(rows) == [
        f"{root}/a.zip!/x/result.json",
        f"{root}/a.zip!/notes.txt",
        f"{root}/b.tgz!/link.json",
        f"{root}/c.json.gz",
        f"{root}/result.json",
    ]
    assert rows[f"{root}/result.json"].split()[:3] == ["tdesktop-json", "0.95", "12"]
    assert rows[f"{root}/a.zip!/x/result.json"].split()[:3] == ["tdesktop-json", "0.95", "5"]
    assert rows[f"{root}/c.json.gz"].split()[:3] == ["tdesktop-json", "0.95", "5"]
    assert "[not a recognised Telegram dump (text starting with 'my notes')]" in rows[f"{root}/a.zip!/notes.txt"]
    link = rows[f"{root}/b.tgz!/link.json"]
    assert link.startswith("skipped") and "links are not followed" in link
    assert result.stderr == (
        "5 inputs: 3 recognised (tdesktop-json 3; about 22 items), 1 unrecognised, 1 skipped. Nothing was written.\n"
    )


def test_detect_json_goes_to_stdout_only(tmp_path):
    root = folder(tmp_path)
    result = run("detect", str(root), "--json")
    assert result.exit_code == 0 and result.stderr == ""
    report = json.loads(result.stdout)
    assert report["totals"] == {"inputs": 5, "recognised": 3, "unrecognised": 1, "skipped": 1, "items": 22}
    entry = next(e for e in report["inputs"] if e["path"].endswith("a.zip!/x/result.json"))
    assert entry == {
        "path": f"{root}/a.zip!/x/result.json",
        "status": "recognised",
        "format": "tdesktop-json",
        "confidence": 0.95,
        "items": 5,
        "items_basis": "counted",
        "bytes": entry["bytes"],
        "bytes_exact": True,
        "reason": None,
        "note": None,
    }
    assert entry["bytes"] > 0
    skipped = next(e for e in report["inputs"] if e["status"] == "skipped")
    assert skipped["reason"].startswith("symbolic link inside a tar archive")


def test_detect_large_input_extrapolates(tmp_path):
    src = write_export(tmp_path / "result.json", good_messages(9000))
    report = json.loads(run("detect", str(src), "--json").stdout)
    (entry,) = report["inputs"]
    assert entry["items_basis"] == "extrapolated" and abs(entry["items"] - 9000) < 900
    text = run("detect", str(src)).stdout.splitlines()[1]
    assert text.split()[2].startswith("~")


def test_detect_nothing_recognised_exits_1_after_the_report(tmp_path):
    (tmp_path / "notes.txt").write_text("my notes")
    result = run("detect", str(tmp_path / "notes.txt"), "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["inputs"][0]["status"] == "unrecognised"
    lines = result.stderr.splitlines()
    assert lines[0] == "Error: no input was recognised as a Telegram dump"
    assert lines[1].startswith("Hint: known formats: tdesktop-json")


def test_detect_missing_input_and_damaged_archive(tmp_path):
    result = run("detect", str(tmp_path / "nope.zip"))
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines()[0] == f"Error: input not found: {tmp_path / 'nope.zip'}"
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(gzip.compress(b'{"name": "x", "id": 1, "messages": [' + b" " * 100_000)[:-40])
    result = run("detect", str(cut))
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"Error: {cut} cannot be read: damaged or truncated gzip data")


def test_detect_stops_a_bomb(tmp_path, monkeypatch):
    monkeypatch.setenv("TGEXPORT_MAX_EXPAND", "64KiB")
    bomb = tmp_path / "bomb.json.gz"
    bomb.write_bytes(gzip.compress(b'{"name": "x", "messages": [' + b" " * (4 << 20)))
    result = run("detect", str(bomb))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].startswith(f"Error: {bomb} expands beyond 64 KiB when decompressed")
    assert "Hint: if the archive is genuine, raise the limit: TGEXPORT_MAX_EXPAND=" in result.stderr


def test_detect_help_has_examples():
    result = run("detect", "--help")
    assert result.exit_code == 0 and "Examples:" in result.stdout and "tgexport detect dumps/" in result.stdout


def test_detect_without_inputs_is_a_usage_error():
    assert run("detect").exit_code == 2
