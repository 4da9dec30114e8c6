"""`convert` over archives end to end: provenance names, bombs and damage, and every format at once.

The last test builds a folder that mixes every golden fixture that exists under
tests/fixtures/<format>/ (a file with a sibling `<case>.expected.json`) inside nested archives,
converts it, and checks that nothing is lost: every fixture is an input
of its own format, reads as many items as its golden file lists, and for every input
read = written + merged + quarantined + skipped. Formats without fixtures yet are skipped.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import zstandard
from click.testing import CliRunner
from golden import FIXTURES
from helpers import export, good_messages

from exporter import converters
from exporter.cli import main
from exporter.pipeline import ConvertRequest, convert
from exporter.sources import discover, sniff


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def dump(n: int, chat_id: int) -> bytes:
    return json.dumps(export(good_messages(n), chat_id=chat_id), indent=1).encode()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_bytes(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def source_files(root: Path) -> dict[str, int]:
    """Rows per `source_file` in a dataset's data files (Parquet or JSONL)."""
    found: dict[str, int] = {}
    for part in sorted(p for p in (root / "posts").rglob("*") if p.is_file()):
        if part.suffix == ".parquet":
            names = pq.read_table(part, columns=["source_file"]).column("source_file").to_pylist()
        else:
            names = [json.loads(line)["source_file"] for line in part.read_bytes().splitlines()]
        for name in names:
            found[name] = found.get(name, 0) + 1
    return found


def leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


def test_convert_zip_targz_gz_and_zst_records_member_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("a.zip").write_bytes(zip_bytes({"x/result.json": dump(4, 101), "x/readme.txt": b"hello"}))
    Path("b.tar.gz").write_bytes(tar_bytes({"export/result.json": dump(3, 102)}, "w:gz"))
    Path("c.json.gz").write_bytes(gzip.compress(dump(2, 103)))
    Path("d.json.zst").write_bytes(zstandard.ZstdCompressor().compress(dump(5, 104)))
    Path("e.tgz").write_bytes(tar_bytes({"inner.zip": zip_bytes({"result.json": dump(6, 110)})}, "w:gz"))
    inputs = ["a.zip", "b.tar.gz", "c.json.gz", "d.json.zst", "e.tgz"]
    result = run("convert", *inputs, "-o", "ds", "--jobs", "2")
    assert result.exit_code == 0, result.stderr
    expected = {
        "a.zip!/x/result.json": 4,
        "b.tar.gz!/export/result.json": 3,
        "c.json.gz": 2,
        "d.json.zst": 5,
        "e.tgz!/inner.zip!/result.json": 6,
    }
    assert source_files(tmp_path / "ds") == expected
    manifest = json.loads(Path("ds/_manifest.json").read_text())
    assert {i["path"]: i["items"]["written"] for i in manifest["inputs"]} == expected
    assert manifest["skipped_inputs"] == [
        {"path": "a.zip!/x/readme.txt", "reason": "not a recognised Telegram dump (text starting with 'hello')"}
    ]
    by_path = {i["path"]: i for i in manifest["inputs"]}
    assert by_path["c.json.gz"]["bytes"] == len(dump(2, 103))  # bytes and sha256 of the decompressed content


def test_same_content_in_an_archive_and_outside_is_converted_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = dump(3, 105)
    Path("result.json").write_bytes(data)
    Path("copy.zip").write_bytes(zip_bytes({"result.json": data}))
    report = convert(ConvertRequest(inputs=["result.json", "copy.zip"], output=Path("ds")))
    assert report.model.skipped_inputs == [{"path": "copy.zip!/result.json", "reason": "same bytes as result.json"}]


def test_bomb_is_stopped_and_leaves_no_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("TGEXPORT_MAX_EXPAND", "32MiB")
    head = b'{"name": "x", "type": "public_channel", "id": 1, "messages": ['
    bomb = tmp_path / "bomb.json.gz"
    bomb.write_bytes(gzip.compress(head) + gzip.compress(bytes(1 << 20), 9) * 300)
    result = run("convert", str(bomb), "-o", str(tmp_path / "ds"))
    assert result.exit_code == 1 and result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"Error: {bomb} expands beyond 32 MiB when decompressed; stopped (a decompression bomb?)"
    assert lines[1].startswith("Hint: if the archive is genuine, raise the limit: TGEXPORT_MAX_EXPAND=")
    assert not (tmp_path / "ds").exists() and leftovers(tmp_path, "ds") == []


def test_zip_member_declaring_too_much_is_refused_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("TGEXPORT_MAX_EXPAND", "4MiB")
    (tmp_path / "ok.json").write_bytes(dump(2, 106))
    (tmp_path / "big.zip").write_bytes(zip_bytes({"result.json": dump(2, 107) + b" " * (5 << 20)}))
    result = run("convert", str(tmp_path / "ok.json"), str(tmp_path / "big.zip"), "-o", str(tmp_path / "ds"))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {tmp_path / 'big.zip'}!/result.json declares that it expands beyond 4 MiB")
    assert not (tmp_path / "ds").exists() and leftovers(tmp_path, "ds") == []


def test_damaged_archive_gives_error_and_hint_and_no_dataset(tmp_path):
    whole = tar_bytes({"result.json": dump(50, 108)}, "w:gz")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    result = run("convert", str(cut), "-o", str(tmp_path / "ds"))
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"Error: {cut} cannot be read: damaged or truncated gzip data")
    assert lines[1].startswith("Hint: the file is damaged or cut short")
    assert not (tmp_path / "ds").exists() and leftovers(tmp_path, "ds") == []


def test_only_encrypted_members_name_the_reason(tmp_path):
    raw = bytearray(zip_bytes({"result.json": dump(2, 109)}))
    for signature, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        raw[raw.index(signature) + at] |= 0x1
    locked = tmp_path / "locked.zip"
    locked.write_bytes(bytes(raw))
    result = run("convert", str(locked), "-o", str(tmp_path / "ds"))
    assert result.exit_code == 1
    assert "encrypted zip member (password-protected)" in result.stderr.splitlines()[0]
    assert not (tmp_path / "ds").exists()


def golden_fixtures() -> dict[str, list[Path]]:
    """Fixtures with a golden file, per registered format; only those sniffed as their own format."""
    found: dict[str, list[Path]] = {}
    for fmt in converters.names():
        for expected in sorted((FIXTURES / fmt).glob("*.expected.json")):
            case = expected.name.removesuffix(".expected.json")
            inputs = [p for p in expected.parent.glob(f"{case}.*") if p != expected]
            if len(inputs) == 1 and sniff(next(discover([str(inputs[0])])))[0] == fmt:
                found.setdefault(fmt, []).append(inputs[0])
    return found


def test_every_format_inside_nested_archives_adds_up(tmp_path, monkeypatch):
    fixtures = golden_fixtures()
    if not fixtures:
        pytest.skip("no golden fixtures yet")
    monkeypatch.chdir(tmp_path)
    mixed = Path("mixed")
    mixed.mkdir()
    expected: dict[str, tuple[str, int]] = {}  # source_file -> (format, items in the golden file)
    outer: dict[str, bytes] = {}
    for i, (fmt, paths) in enumerate(sorted(fixtures.items())):
        golden = {
            p.name: len(json.loads(p.with_name(p.name.split(".")[0] + ".expected.json").read_text())) for p in paths
        }
        if i % 3 == 0:  # fmt.zip inside mixed/outer.tar.gz
            outer[f"{fmt}.zip"] = zip_bytes({f"{fmt}/{p.name}": p.read_bytes() for p in paths})
            where = f"mixed/outer.tar.gz!/{fmt}.zip!/{fmt}/"
        elif i % 3 == 1:  # gzipped members of mixed/fmt.tar.zst
            members = {f"{p.name}.gz": gzip.compress(p.read_bytes(), mtime=0) for p in paths}
            (mixed / f"{fmt}.tar.zst").write_bytes(zstandard.ZstdCompressor().compress(tar_bytes(members)))
            where, golden = f"mixed/{fmt}.tar.zst!/", {f"{k}.gz": v for k, v in golden.items()}
        else:  # a zip inside a zip, next to plain files in a sub folder
            inner = zip_bytes({p.name: p.read_bytes() for p in paths[::2]})
            (mixed / f"{fmt}.zip").write_bytes(zip_bytes({"inner.zip": inner}))
            (mixed / fmt).mkdir()
            for p in paths[1::2]:
                (mixed / fmt / p.name).write_bytes(p.read_bytes())
            where = {p.name: f"mixed/{fmt}.zip!/inner.zip!/" for p in paths[::2]}
            where.update({p.name: f"mixed/{fmt}/" for p in paths[1::2]})
        for name, items in golden.items():
            prefix = where if isinstance(where, str) else where[name]
            expected[prefix + name] = (fmt, items)
    (mixed / "outer.tar.gz").write_bytes(tar_bytes(outer, "w:gz"))
    report = convert(ConvertRequest(inputs=["mixed"], output=Path("ds"), to="jsonl", tz_name="UTC"))
    inputs = {i.path: i for i in report.model.inputs}
    duplicates = {s["path"] for s in report.model.skipped_inputs if s["reason"].startswith("same bytes as")}
    assert set(inputs) | duplicates == set(expected)
    for path, record in inputs.items():
        fmt, items = expected[path]
        assert (record.format, record.read) == (fmt, items), path
        assert record.read == record.written + record.merged + record.quarantined + sum(record.skipped.values())
    totals = report.model.totals()
    assert totals["read"] == totals["written"] + totals["merged"] + totals["quarantined"] + totals["skipped"]
    assert totals["rows"] == totals["written"]
    assert set(source_files(Path("ds"))) <= set(inputs)
