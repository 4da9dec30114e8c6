"""prehash: inputs hashed while the program loads give the same digests, or none at all."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from exporter import prehash
from exporter.archives import HEAD_BYTES
from exporter.sources import InputUnit, discover

REAL_MIN_BYTES = prehash.MIN_BYTES


@pytest.fixture(autouse=True)
def _small_files_count(monkeypatch):
    monkeypatch.setattr(prehash, "MIN_BYTES", 1)
    monkeypatch.setattr(prehash, "CHUNK", 7)  # many reads: the loop, not one lucky read
    prehash.forget()
    yield
    prehash.forget()


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_digest_of_a_named_file_is_its_sha256(tmp_path) -> None:
    path = _file(tmp_path, "a.json", b'{"messages": []}' * 5)
    prehash.start(["tgexport", "convert", str(path), "-o", str(tmp_path / "out")])
    assert prehash.digest(str(path)) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert prehash.digest(str(tmp_path / "a.json")) == prehash.digest(os.path.relpath(path))


def test_nothing_is_hashed_for_other_commands_options_or_small_files(tmp_path, monkeypatch) -> None:
    path = _file(tmp_path, "a.json", b'{"x": 123}')
    prehash.start(["tgexport", "stats", str(path)])
    assert prehash.digest(str(path)) is None
    prehash.start(["tgexport", "convert", f"--key={path}", str(tmp_path)])  # a folder: left alone
    assert prehash.digest(str(path)) is None
    monkeypatch.setattr(prehash, "MIN_BYTES", 11)
    prehash.start(["tgexport", "convert", str(path)])
    assert prehash.digest(str(path)) is None


@pytest.mark.parametrize("head", [b"PK\x03\x04", b"\x1f\x8b\x08\x00", b"\x28\xb5\x2f\xfd", b"name.json" + bytes(100)])
def test_archives_and_compressed_files_are_left_to_their_members(tmp_path, head: bytes) -> None:
    path = _file(tmp_path, "dump.bin", head + b"{}" * 10)
    prehash.start(["tgexport", "convert", str(path)])
    assert prehash.digest(str(path)) is None
    text = _file(tmp_path, "result.json", '\ufeff{\n "name": "Канал",\r\n\t"x": 1}'.encode())
    prehash.start(["tgexport", "convert", str(text)])
    assert prehash.digest(str(text)) == hashlib.sha256(text.read_bytes()).hexdigest()


def test_a_changed_file_is_hashed_again(tmp_path) -> None:
    path = _file(tmp_path, "a.json", b'{"first": 1}')
    prehash.start(["tgexport", "convert", str(path)])
    assert prehash.digest(str(path)) is not None
    path.write_bytes(b'{"second": "longer"}')
    assert prehash.digest(str(path)) is None
    (unit,) = discover([str(path)], [])
    assert unit.sha256() == hashlib.sha256(b'{"second": "longer"}').hexdigest()


def test_input_units_take_the_early_digest(tmp_path, monkeypatch) -> None:
    payload = b'[{"p": 1}]' * HEAD_BYTES  # past the head the scan reads (it hashes smaller files itself)
    path = _file(tmp_path, "a.json", payload)
    prehash.start(["tgexport", "convert", str(path)])
    assert prehash.digest(str(path)) == hashlib.sha256(payload).hexdigest()
    for key in list(prehash._digests):
        prehash._digests[key] = "f" * 64  # the unit must take this one, not hash the file
    monkeypatch.setattr(InputUnit, "open", lambda self: pytest.fail("read again"))
    (unit,) = discover([str(path)], [])
    seen: list[int] = []
    assert unit.sha256(seen.append) == "f" * 64
    assert seen == [len(payload)] and unit.size == len(payload)


def test_unreadable_file_falls_back(tmp_path) -> None:
    path = _file(tmp_path, "a.json", b'{"p": 1}')
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("root can read anything")
        prehash.start(["tgexport", "convert", str(path)])
        assert prehash.digest(str(path)) is None
    finally:
        path.chmod(0o644)


def test_console_script_gives_the_dataset_of_the_library(tmp_path) -> None:
    """The real `tgexport` (launcher: prehash, then the CLI) on a big input names and stamps
    its files with the input's sha256."""
    src = Path(__file__).parent.parent / "examples" / "harbor_city_dispatch" / "result.json"
    big = _file(tmp_path, "result.json", src.read_bytes() + b" " * (REAL_MIN_BYTES + 1))
    exe = Path(sys.executable).parent / "tgexport"
    proc = subprocess.run([str(exe), "convert", str(big), "-o", str(tmp_path / "ds"), "-q"], capture_output=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    short = hashlib.sha256(big.read_bytes()).hexdigest()[:16]
    names = {p.name for p in (tmp_path / "ds" / "posts").rglob("*.parquet")}
    assert names and all(name.startswith(f"part-{short}") for name in names)


def test_the_launcher_turns_the_collector_back_on_after_the_imports() -> None:
    """The collector is off only while the CLI is imported (`launch.load_cli`), in a new process."""
    code = (
        "import gc, sys\n"
        "sys.argv = ['tgexport', '--version']\n"
        "from exporter import launch\n"
        "seen = []\n"
        "real = gc.disable\n"
        "gc.disable = lambda: (seen.append('off'), real())[1]\n"
        "entry = launch.load_cli()\n"
        "print(seen, gc.isenabled(), 'exporter.cli' in sys.modules, entry.__module__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["['off']", "True", "True", "exporter.cli"]
