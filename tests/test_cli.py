"""CLI contract: exit codes, stdout and stderr, for success, partial failure and bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import good_messages, message, write_export

from exporter.cli import main


def run(*args, cwd=None):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


def test_convert_success_prints_summary_on_stderr_only(tmp_path):
    src = write_export(tmp_path / "result.json", good_messages(12))
    result = run("convert", str(src), "-o", str(tmp_path / "ds"))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "Counts: read 12 = written 12 + merged 0 + quarantined 0 + skipped 0 (ok)" in result.stderr
    assert "rows per partition" in result.stderr
    assert (tmp_path / "ds" / "_SUCCESS").is_file()
    assert leftovers(tmp_path, "ds") == []


def test_convert_json_report_goes_to_stdout(tmp_path):
    src = write_export(tmp_path / "result.json", good_messages(5))
    result = run("convert", str(src), "-o", str(tmp_path / "ds"), "--json", "--quiet")
    assert result.exit_code == 0 and result.stderr == ""
    report = json.loads(result.stdout)
    assert report["totals"]["written"] == 5


def test_partial_failure_quarantines_and_exits_3(tmp_path):
    msgs = good_messages(6)
    msgs.append(message("7", 1711845005))  # string id
    bad_date = message(8)
    del bad_date["date"], bad_date["date_unixtime"]
    msgs.append(bad_date)
    msgs.append(message(9, text=42))  # text of the wrong type
    msgs.append({"id": 10, "type": "unsupported"})
    src = write_export(tmp_path / "result.json", msgs)
    result = run("convert", str(src), "-o", str(tmp_path / "ds"))
    assert result.exit_code == 3
    assert result.stdout == ""
    assert "Counts: read 10 = written 6 + merged 0 + quarantined 3 + skipped 1 (ok)" in result.stderr
    manifest = json.loads((tmp_path / "ds" / "_manifest.json").read_text())
    rejects_path = tmp_path / "ds" / manifest["rejects"]["path"]
    rejects = [json.loads(line) for line in rejects_path.read_text().splitlines()]
    assert [r["source_locator"] for r in rejects] == ["/messages/6", "/messages/7", "/messages/8"]
    assert any("post_id" in reason for reason in rejects[0]["reasons"])
    assert any("date" in reason for reason in rejects[1]["reasons"])
    assert any("text" in reason for reason in rejects[2]["reasons"])
    assert rejects[0]["raw"]["id"] == "7"
    item = manifest["inputs"][0]["items"]
    assert item == {"read": 10, "written": 6, "merged": 0, "quarantined": 3, "skipped": 1}


def test_on_invalid_fail_writes_nothing(tmp_path):
    src = write_export(tmp_path / "result.json", [*good_messages(3), message("x")])
    result = run("convert", str(src), "-o", str(tmp_path / "ds"), "--on-invalid", "fail")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and "/messages/3" in result.stderr
    assert "Hint: use --on-invalid quarantine" in result.stderr
    assert not (tmp_path / "ds").exists() and leftovers(tmp_path, "ds") == []


def test_on_invalid_skip_counts_skipped(tmp_path):
    src = write_export(tmp_path / "result.json", [*good_messages(3), message("x")])
    result = run("convert", str(src), "-o", str(tmp_path / "ds"), "--on-invalid", "skip")
    assert result.exit_code == 0
    assert "skipped 1" in result.stderr and "(ok)" in result.stderr


BAD_INPUTS = {
    "truncated.json": (
        b'{\n "name": "Example Channel",\n "type": "public_channel",\n "id": 1,\n "messages": [\n  {"id": 1,'
    ),
    "garbage.bin": bytes(range(256)) * 4,
    "empty.json": b"",
    "other.json": b'{"users": [{"name": "a"}], "version": 3}',
    "array.json": b"[1, 2, 3]",
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_gives_one_error_and_a_hint_and_no_dataset(tmp_path, name):
    src = tmp_path / name
    src.write_bytes(BAD_INPUTS[name])
    result = run("convert", str(src), "-o", str(tmp_path / "ds"))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("Error: ") and lines[1].startswith("Hint: ")
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "ds").exists() and leftovers(tmp_path, "ds") == []


def test_truncated_export_forced_format_is_reported_as_damaged(tmp_path):
    src = tmp_path / "result.json"
    src.write_bytes(BAD_INPUTS["truncated.json"])
    result = run("convert", str(src), "-o", str(tmp_path / "ds"), "--from", "tdesktop-json")
    assert result.exit_code == 1
    assert "truncated or damaged" in result.stderr and "Hint: " in result.stderr
    assert not (tmp_path / "ds").exists() and leftovers(tmp_path, "ds") == []


def test_missing_input(tmp_path):
    result = run("convert", str(tmp_path / "nope.json"), "-o", str(tmp_path / "ds"))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == f"Error: input not found: {tmp_path / 'nope.json'}"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_non_root(tmp_path):
    src = write_export(tmp_path / "result.json", good_messages(2))
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = run("convert", str(src), "-o", str(locked / "ds"))
    assert result.exit_code == 1 and result.stderr.startswith("Error: cannot write")


def test_unwritable_output(tmp_path):
    src = write_export(tmp_path / "result.json", good_messages(2))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run("convert", str(src), "-o", str(blocker / "ds"))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and "Hint: " in result.stderr
    readonly = Path("/proc/tgexport-ds")
    result = run("convert", str(src), "-o", str(readonly))
    assert result.exit_code == 1 and "Error: cannot write to /proc" in result.stderr


def test_existing_output_needs_overwrite(tmp_path):
    src = write_export(tmp_path / "result.json", good_messages(2))
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run("convert", str(src), "-o", str(out))
    assert result.exit_code == 1 and "Hint: pass --overwrite" in result.stderr
    assert (out / "keep.txt").read_text() == "mine"
    result = run("convert", str(src), "-o", str(out), "--overwrite")
    assert result.exit_code == 0 and not (out / "keep.txt").exists() and (out / "_SUCCESS").exists()


def test_local_dates_without_tz_name_the_option(tmp_path):
    msg = message(1)
    del msg["date_unixtime"]
    src = write_export(tmp_path / "result.json", [msg])
    result = run("convert", str(src), "-o", str(tmp_path / "ds"))
    assert result.exit_code == 1 and "--tz" in result.stderr.splitlines()[1]
    assert not (tmp_path / "ds").exists()
    result = run("convert", str(src), "-o", str(tmp_path / "ds"), "--tz", "Europe/Berlin")
    assert result.exit_code == 0


def test_unknown_tz_is_a_usage_error(tmp_path):
    src = write_export(tmp_path / "result.json", good_messages(1))
    result = run("convert", str(src), "-o", str(tmp_path / "ds"), "--tz", "Mars/Olympus")
    assert result.exit_code == 2 and "Error: unknown time zone 'Mars/Olympus'" in result.stderr


def test_bad_partition_by_is_a_usage_error(tmp_path):
    src = write_export(tmp_path / "result.json", good_messages(1))
    result = run("convert", str(src), "-o", str(tmp_path / "ds"), "--partition-by", "day")
    assert result.exit_code == 2 and "Hint: use keys from chat, year, month" in result.stderr


def test_help_has_examples_for_every_command():
    for command in main.commands:
        result = run(command, "--help")
        assert result.exit_code == 0 and "Examples:" in result.stdout, command


def test_version_schema_and_formats():
    assert run("--version").stdout.strip() == "tgexport, version 0.1.0"
    schema_doc = json.loads(run("schema").stdout)
    assert schema_doc["title"] == "tgexport post record"
    assert "date: timestamp[us, tz=UTC]" in run("schema", "--arrow").stdout
    listing = json.loads(run("formats", "--json").stdout)
    assert "tdesktop-json" in [f["name"] for f in listing["inputs"]] and "parquet" in listing["outputs"]


def test_console_script_runs_without_traceback(tmp_path):
    src = tmp_path / "garbage.bin"
    src.write_bytes(b"\x00\xff" * 100)
    exe = Path(sys.executable).parent / "tgexport"
    proc = subprocess.run([str(exe), "convert", str(src), "-o", str(tmp_path / "ds")], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("Error: ") and "Traceback" not in proc.stderr


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_console_script_converts_without_loading_pandas(tmp_path, monkeypatch, jobs):
    """pyarrow would import pandas (0.2 s, ~35 MB per process) just to ask whether a list is a
    pandas object; the `tgexport` process leaves it unloaded, and the dataset is the same."""
    monkeypatch.setenv("TGEXPORT_POOL", "processes")  # jobs=2: spawned workers must leave it out too
    src = Path(__file__).parent.parent / "examples" / "harbor_city_dispatch" / "result.json"
    exe = Path(sys.executable).parent / "tgexport"
    proc = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            str(exe),
            "convert",
            str(src),
            "-o",
            str(tmp_path / "ds"),
            "-q",
            "-j",
            jobs,
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "pyarrow" in imported  # a refused `import pandas` is still listed, its submodules are not
    assert not [name for name in imported if name.startswith("pandas.")]
    from exporter.pipeline import ConvertRequest, convert

    convert(ConvertRequest(inputs=[str(src)], output=tmp_path / "lib", jobs=1))  # pandas allowed here
    for path in sorted((tmp_path / "ds" / "posts").rglob("*.parquet")):
        assert path.read_bytes() == (tmp_path / "lib" / path.relative_to(tmp_path / "ds")).read_bytes()
