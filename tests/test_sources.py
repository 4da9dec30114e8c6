"""Input discovery over files, folders and archives (zip, tar, gzip, zstd, nested), read as streams.

Archives are built here in tmp_path from the tiny exports of helpers.py. Each test pins one
promise: display names and bytes, re-opening in another process, hostile names and links,
decompression bombs, damaged archives.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import pickle
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import zstandard
from helpers import export, good_messages

from exporter import archive_streams, archives
from exporter.archive_streams import Limits, ZstdFrames, parse_size
from exporter.archives import container_kind
from exporter.errors import InputError, UsageError
from exporter.sources import Skipped, discover, estimate_items, sniff

MiB = 1 << 20


def dump(n: int = 3, chat_id: int = 1234567890) -> bytes:
    return json.dumps(export(good_messages(n), chat_id=chat_id), indent=1).encode()


def make_zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def make_tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zst(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def units_of(*inputs: Path, **kw) -> tuple[dict, list[Skipped]]:
    skipped: list[Skipped] = []
    units = {u.display: u for u in discover([str(p) for p in inputs], skipped, **kw)}
    return units, skipped


@pytest.fixture
def dumps(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A folder with a plain file and nested archives; returns it and the expected bytes per unit."""
    a, b, c, d, e = (dump(n, 1000 + n) for n in range(1, 6))
    root = tmp_path / "dumps"
    root.mkdir()
    (root / "result.json").write_bytes(a)
    (root / "a.zip").write_bytes(
        make_zip({"x/result.json": b, "notes.txt": b"my notes", "x/c.json.gz": gzip.compress(c)})
    )
    inner = make_zip({"deep/result.json": d}, zipfile.ZIP_STORED)
    (root / "outer.tar.gz").write_bytes(make_tar({"inner.zip": inner, "e.json.zst": zst(e)}, "w:gz"))
    (root / "f.json.gz").write_bytes(gzip.compress(a + b" "))
    return root, {
        f"{root}/result.json": a,
        f"{root}/a.zip!/x/result.json": b,
        f"{root}/a.zip!/notes.txt": b"my notes",
        f"{root}/a.zip!/x/c.json.gz": c,
        f"{root}/outer.tar.gz!/inner.zip!/deep/result.json": d,
        f"{root}/outer.tar.gz!/e.json.zst": e,
        f"{root}/f.json.gz": a + b" ",
    }


def test_folder_and_nested_archives_give_units_with_display_names_and_bytes(dumps):
    root, expected = dumps
    units, skipped = units_of(root)
    assert set(units) == set(expected) and skipped == []
    for display, unit in units.items():
        with unit.open() as stream:
            assert stream.read() == expected[display], display
        assert unit.sha256() == hashlib.sha256(expected[display]).hexdigest()
        assert unit.size == len(expected[display]) and unit.size_exact
        assert not unit.explicit
    formats = {display: sniff(unit)[0] for display, unit in units.items()}
    assert formats[f"{root}/a.zip!/notes.txt"] is None
    assert {f for d, f in formats.items() if not d.endswith("notes.txt")} == {"tdesktop-json"}


def test_members_reopen_after_a_pickle_round_trip_in_another_process(dumps):
    root, expected = dumps
    units, _ = units_of(root)
    script = (
        "import hashlib, pickle, sys\n"
        "for unit in pickle.load(sys.stdin.buffer):\n"
        "    with unit.open() as s:\n"
        "        print(unit.display, hashlib.sha256(s.read()).hexdigest())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], input=pickle.dumps(list(units.values())), capture_output=True, check=True
    )
    got = dict(line.rsplit(" ", 1) for line in proc.stdout.decode().splitlines())
    assert got == {d: hashlib.sha256(b).hexdigest() for d, b in expected.items()}


def test_a_unit_opens_independently_many_times(dumps):
    root, expected = dumps
    units, _ = units_of(root)
    unit = units[f"{root}/outer.tar.gz!/inner.zip!/deep/result.json"]
    first, second = unit.open(), unit.open()
    with first, second:
        assert first.read(10) == second.read(10) == expected[unit.display][:10]
        assert first.read() == expected[unit.display][10:]


def test_an_archive_given_explicitly_has_members_that_are_not_explicit(tmp_path):
    path = tmp_path / "a.zip"
    path.write_bytes(make_zip({"result.json": dump()}))
    gz = tmp_path / "r.json.gz"
    gz.write_bytes(gzip.compress(dump()))
    units, _ = units_of(path, gz)
    assert {d: u.explicit for d, u in units.items()} == {f"{path}!/result.json": False, str(gz): True}


def test_archives_are_recognised_by_content_not_by_name(tmp_path):
    disguised = tmp_path / "result.json"
    disguised.write_bytes(make_zip({"inside.json": dump()}))
    plain = tmp_path / "backup.zip"
    plain.write_bytes(dump())
    units, _ = units_of(disguised, plain)
    assert set(units) == {f"{disguised}!/inside.json", str(plain)}
    assert container_kind(make_tar({"x": b"1"})) == "tar"
    assert container_kind(b"PK\x05\x06" + bytes(18)) == "zip"
    assert container_kind(b'{"messages": []}' + bytes(600)) is None


def test_v7_tar_without_magic_is_recognised(tmp_path):
    raw = bytearray(make_tar({"result.json": dump()}, "w"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        info = tarfile.TarInfo("result.json")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"{}"))
    raw = bytearray(buf.getvalue())
    raw[257:265] = bytes(8)  # drop the ustar magic and version, fix the checksum
    raw[148:156] = b" " * 8
    raw[148:156] = b"%06o\x00 " % sum(raw[:512])
    assert container_kind(bytes(raw)) == "tar"


def test_zip_slip_and_absolute_member_names_are_harmless_and_reported(tmp_path):
    evil = tmp_path / "work" / "evil.zip"
    evil.parent.mkdir()
    names = ["../../escaped.json", "/etc/absolute.json", "C:\\windows\\drive.json", "ctl\x1b[2J.json"]
    evil.write_bytes(make_zip({n: dump(1, 1 + i) for i, n in enumerate(names)}))
    units, _ = units_of(evil)
    shown = sorted(d.split("!/", 1)[1] for d in units)
    assert shown == ["ctl\\x1b[2J.json", "escaped.json", "etc/absolute.json", "windows/drive.json"]
    assert all(u.note and "unsafe member name" in u.note for u in units.values())
    for unit in units.values():
        with unit.open() as stream:
            assert stream.read().startswith(b"{")
    assert not (tmp_path / "escaped.json").exists() and not Path("/etc/absolute.json").exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["evil.zip", "work"]


def test_links_inside_tar_are_not_followed_but_skipped_with_reason(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = dump()
        info = tarfile.TarInfo("ok/result.json")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        for name, kind, target in [
            ("sym.json", tarfile.SYMTYPE, "/etc/passwd"),
            ("hard.json", tarfile.LNKTYPE, "ok/result.json"),
            ("fifo", tarfile.FIFOTYPE, ""),
        ]:
            link = tarfile.TarInfo(name)
            link.type, link.linkname = kind, target
            tf.addfile(link)
    path = tmp_path / "links.tar"
    path.write_bytes(buf.getvalue())
    units, skipped = units_of(path)
    assert list(units) == [f"{path}!/ok/result.json"]
    reasons = {s.display.rsplit("/", 1)[1]: s.reason for s in skipped}
    assert reasons["sym.json"] == "symbolic link inside a tar archive (to '/etc/passwd'); links are not followed"
    assert reasons["hard.json"].startswith("hard link inside a tar archive")
    assert reasons["fifo"].startswith("special file")


def patch_zip(raw: bytes, index: int, flags: int = 0, method: int | None = None) -> bytes:
    """Set general-purpose flags (and the method) of member `index` in its local and central headers."""
    out = bytearray(raw)
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = -1
        for _ in range(index + 1):
            at = out.index(signature, at + 1)
        out[at + flag_at] |= flags
        if method is not None:
            out[at + flag_at + 2 : at + flag_at + 4] = method.to_bytes(2, "little")
    return bytes(out)


def test_encrypted_and_unsupported_zip_members_are_skipped_with_reason(tmp_path):
    raw = make_zip({"plain.json": dump(), "secret.json": dump(), "deflate64.json": dump()})
    path = tmp_path / "locked.zip"
    path.write_bytes(patch_zip(patch_zip(raw, 1, flags=0x1), 2, method=9))
    units, skipped = units_of(path)
    assert list(units) == [f"{path}!/plain.json"]
    reasons = {s.display.rsplit("/", 1)[1]: s.reason for s in skipped}
    assert reasons["secret.json"].startswith("encrypted zip member (password-protected)")
    assert reasons["deflate64.json"].startswith("zip compression method 9 is not supported")


def test_directories_hidden_members_and_macos_forks_are_ignored(tmp_path):
    path = tmp_path / "a.zip"
    path.write_bytes(
        make_zip({"d/": b"", "d/.hidden.json": dump(), "__MACOSX/d/._r.json": b"\x00\x05", "d/r.json": dump()})
    )
    units, skipped = units_of(path)
    assert list(units) == [f"{path}!/d/r.json"] and skipped == []


def test_nesting_deeper_than_the_limit_is_skipped(tmp_path):
    data = dump()
    for _ in range(9):
        data = gzip.compress(data)
    path = tmp_path / "deep.json.gz"
    path.write_bytes(data)
    units, skipped = units_of(path)
    assert units == {} and "nested more than 8 levels" in skipped[0].reason


def zeros_gzip(total_mib: int) -> bytes:
    """`total_mib` MiB of zeros as a multi-member gzip (cheap to build: one member, repeated)."""
    return gzip.compress(bytes(MiB), 9) * total_mib


def test_gzip_bomb_is_stopped_while_hashing(tmp_path):
    path = tmp_path / "bomb.json.gz"
    path.write_bytes(zeros_gzip(300))
    (unit,) = discover([str(path)], limits=Limits(max_expand=16 * MiB))
    with pytest.raises(InputError) as caught:
        unit.sha256()
    assert str(caught.value) == f"{path} expands beyond 16 MiB when decompressed; stopped (a decompression bomb?)"
    assert "TGEXPORT_MAX_EXPAND" in caught.value.hint


def test_ratio_bomb_is_stopped_with_default_limits(tmp_path):
    path = tmp_path / "bomb.json.zst"
    path.write_bytes(zst(bytes(100 * MiB)))
    (unit,) = discover([str(path)], limits=Limits())
    with pytest.raises(InputError, match="expands beyond 1000 times its compressed size") as caught:
        unit.sha256()
    assert "TGEXPORT_MAX_RATIO" in caught.value.hint


def test_bomb_inside_a_tar_is_stopped_during_the_scan(tmp_path):
    path = tmp_path / "bomb.tgz"
    path.write_bytes(gzip.compress(make_tar({"r.json": b"{" + bytes(40 * MiB)}), 1))
    with pytest.raises(InputError, match=r"bomb.tgz expands beyond 8 MiB"):
        units_of(path, limits=Limits(max_expand=8 * MiB))


def test_zip_member_declaring_a_huge_size_is_stopped_before_reading(tmp_path):
    path = tmp_path / "bomb.zip"
    path.write_bytes(make_zip({"big.json": bytes(20 * MiB)}))
    with pytest.raises(InputError, match=r"bomb.zip!/big.json declares that it expands beyond 100 times"):
        units_of(path, limits=Limits(max_ratio=100, ratio_after=MiB))


def test_limits_come_from_the_environment():
    env = {"TGEXPORT_MAX_EXPAND": "300MiB", "TGEXPORT_MAX_RATIO": "0", "TGEXPORT_RATIO_AFTER": "1G"}
    assert Limits.from_env(env) == Limits(max_expand=300 * MiB, max_ratio=0, ratio_after=1 << 30)
    assert Limits.from_env({}) == Limits()
    assert parse_size("20GiB") == 20 << 30 and parse_size("512") == 512 and parse_size("1.5k") == 1536
    with pytest.raises(UsageError, match="TGEXPORT_MAX_EXPAND='lots' is not valid"):
        Limits.from_env({"TGEXPORT_MAX_EXPAND": "lots"})


def damaged_inputs() -> dict[str, bytes]:
    data = dump(40)
    tgz = make_tar({"r.json": data}, "w:gz")
    zipped = make_zip({"r.json": data}, zipfile.ZIP_STORED)
    bad_crc = bytearray(zipped)
    bad_crc[bad_crc.index(b'"messages"')] ^= 0x20
    return {
        "cut.tar.gz": tgz[: len(tgz) // 2],
        "cut.zip": zipped[:-30],
        "crc.zip": bytes(bad_crc),
        "cut.json.zst": zst(data)[:-9],
        "cut.json.gz": gzip.compress(data)[:-12],
        "cut.tar": make_tar({"r.json": data})[:900],
    }


@pytest.mark.parametrize("name", sorted(damaged_inputs()))
def test_damaged_archives_raise_input_error_with_hint(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(damaged_inputs()[name])
    with pytest.raises(InputError) as caught:
        for unit in discover([str(path)]):
            unit.sha256()
    assert "cannot be read: damaged or truncated" in str(caught.value)
    assert str(caught.value).startswith(str(path)) and "nothing was written" in caught.value.hint


def test_zstd_frame_walker_accepts_several_frames_and_skippable_frames():
    data = zst(b"first") + b"\x50\x2a\x4d\x18\x03\x00\x00\x00abc" + zst(b"x" * 300_000)
    frames = ZstdFrames()
    for i in range(0, len(data), 7):
        frames.feed(data[i : i + 7])
    assert frames.complete
    cut = ZstdFrames()
    cut.feed(data[:-3])
    assert not cut.complete


def test_estimates_count_small_inputs_and_extrapolate_large_ones(tmp_path):
    small = tmp_path / "small.json"
    small.write_bytes(dump(7))
    big_data = json.dumps(export(good_messages(12000))).encode()
    assert len(big_data) > 2 * MiB
    big = tmp_path / "big.json"
    big.write_bytes(big_data)
    big_gz = tmp_path / "big.json.gz"
    big_gz.write_bytes(gzip.compress(big_data))
    units, _ = units_of(small, big, big_gz)
    assert estimate_items(units[str(small)], "tdesktop-json").items == 7
    for path in (big, big_gz):
        estimate = estimate_items(units[str(path)], "tdesktop-json")
        assert estimate.basis == "extrapolated" and abs(estimate.items - 12000) < 1800, (path, estimate)


@pytest.mark.parametrize("small_tail", [False, True])
def test_zip_inside_a_stream_is_scanned_in_few_passes(tmp_path, monkeypatch, small_tail):
    """A zip inside a .tgz needs random access: its chain is re-opened a fixed number of times,
    not once per member (the whole zip fits in the kept tail, or its central directory does not)."""
    if small_tail:
        monkeypatch.setattr(archive_streams, "TAIL", 256)
    members = {f"m{i:02}.json": dump(1, i + 1) for i in range(40)}
    path = tmp_path / "outer.tgz"
    path.write_bytes(make_tar({"inner.zip": make_zip(members)}, "w:gz"))
    opened = []
    real_open_chain = archives.open_chain

    def counting_open_chain(*args):
        opened.append(args[1])
        return real_open_chain(*args)

    monkeypatch.setattr(archives, "open_chain", counting_open_chain)
    units, _ = units_of(path)
    assert len(opened) == (3 if small_tail else 1)
    assert {d.rsplit("!/", 1)[1]: u.digest for d, u in units.items()} == {
        name: hashlib.sha256(data).hexdigest() for name, data in members.items()
    }
    opened.clear()
    with units[f"{path}!/inner.zip!/m39.json"].open() as stream:
        assert stream.read() == members["m39.json"]
    assert len(opened) == (4 if small_tail else 2)  # this member's chain, and the zip's chain it re-opens


def test_zip_inside_gzip_and_tar_inside_zstd_are_opened(tmp_path):
    data = dump(2)
    (tmp_path / "a.zip.gz").write_bytes(gzip.compress(make_zip({"r.json": data})))
    (tmp_path / "b.tar.zst").write_bytes(zst(make_tar({"r.json": data + b"\n"})))
    units, _ = units_of(tmp_path)
    assert set(units) == {f"{tmp_path}/a.zip.gz!/r.json", f"{tmp_path}/b.tar.zst!/r.json"}
    for unit in units.values():
        unit.opener = pickle.loads(pickle.dumps(unit.opener))
        with unit.open() as stream:
            assert stream.read() in (data, data + b"\n")


def test_too_many_members_are_refused(tmp_path):
    path = tmp_path / "many.zip"
    path.write_bytes(make_zip({f"{i}.txt": b"x" for i in range(5)}))
    with pytest.raises(InputError, match=r"many.zip holds more than 3 archive members") as caught:
        units_of(path, limits=Limits(max_members=3))
    assert "TGEXPORT_MAX_MEMBERS" in caught.value.hint
