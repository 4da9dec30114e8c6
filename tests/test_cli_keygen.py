"""`tgexport keygen` and the convert options of pseudonymization: exit codes, stdout, stderr."""

from __future__ import annotations

import json
import re
import sys

from click.testing import CliRunner
from helpers import good_messages, message, write_export

from exporter.cli import main
from exporter.pseudonymize import fingerprint, load_key

USER = "user5550123987"


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def person_export(path):
    messages = [message(i, text=f"post {i}", **{"from": "Zinaida Kvashnina", "from_id": USER}) for i in range(1, 4)]
    return write_export(path, messages, name="Weather Talk")


def test_keygen_writes_a_private_random_key_and_says_its_fingerprint(tmp_path):
    key = tmp_path / "project.key"
    result = run("keygen", str(key))
    assert result.exit_code == 0 and result.stdout == ""
    assert key.stat().st_mode & 0o777 == 0o600
    assert re.fullmatch(r"[0-9a-f]{64}\n", key.read_text())
    secret = load_key(key)
    assert result.stderr == (
        f"Wrote a new 32-byte key to {key} (fingerprint {fingerprint(secret)}).\n"
        "Keep it outside the dataset and back it up; datasets record only the fingerprint.\n"
    )
    other = tmp_path / "other.key"
    assert run("keygen", str(other)).exit_code == 0 and load_key(other) != secret


def test_keygen_json_report_goes_to_stdout(tmp_path):
    key = tmp_path / "k.key"
    result = run("keygen", str(key), "--json")
    assert result.exit_code == 0 and result.stderr == ""
    assert json.loads(result.stdout) == {"path": str(key), "bytes": 32, "fingerprint": fingerprint(load_key(key))}


def test_keygen_never_overwrites_a_key(tmp_path):
    key = tmp_path / "k.key"
    key.write_text("precious\n")
    result = run("keygen", str(key))
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (
        f"Error: {key} already exists; keygen never overwrites a key\n"
        "Hint: choose another path (a replaced key makes every earlier pseudonym unlinkable)\n"
    )
    assert key.read_text() == "precious\n"


def test_keygen_into_a_missing_folder_fails_cleanly(tmp_path):
    result = run("keygen", str(tmp_path / "nope" / "k.key"))
    assert result.exit_code == 1 and result.stderr.startswith("Error: cannot create ")


def test_pseudonymization_options_must_go_together(tmp_path):
    src = write_export(tmp_path / "result.json", good_messages(3))
    out = str(tmp_path / "ds")
    result = run("convert", str(src), "-o", out, "--redact-text")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == "Error: --redact-text needs --pseudonymize\nHint: add --pseudonymize --key-file KEY\n"
    result = run("convert", str(src), "-o", out, "--pseudonymize")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --pseudonymize needs --key-file KEY\nHint: create a key with `tgexport keygen KEY`\n"
    )
    result = run("convert", str(src), "-o", out, "--pseudonymize", "--key-file", str(tmp_path / "missing.key"))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: key file {tmp_path / 'missing.key'} does not exist\n")
    (tmp_path / "bad.key").write_text("0123")
    result = run("convert", str(src), "-o", out, "--pseudonymize", "--key-file", str(tmp_path / "bad.key"))
    assert result.exit_code == 2 and "is not a tgexport key (expected 64 hex digits)" in result.stderr
    assert not (tmp_path / "ds").exists()


def test_convert_pseudonymizes_and_the_manifest_hides_the_key_path(tmp_path, monkeypatch):
    key = tmp_path / "secret-place" / "project.key"
    key.parent.mkdir()
    run("keygen", str(key))
    src = person_export(tmp_path / "result.json")
    out = tmp_path / "ds"
    argv = ["tgexport", "convert", str(src), "-o", str(out), "--pseudonymize", f"--key-file={key}", "-q"]
    monkeypatch.setattr(sys, "argv", argv)
    result = run(*argv[1:])
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""
    manifest_text = (out / "_manifest.json").read_text(encoding="utf-8")
    manifest = json.loads(manifest_text)
    assert "--key-file=<redacted>" in manifest["command"]
    assert "secret-place" not in manifest_text and key.read_text().strip() not in manifest_text
    assert manifest["pseudonymization"]["key_fingerprint"] == fingerprint(load_key(key))
    for name in ("datapackage.json", "croissant.json", "_SUCCESS"):
        text = (out / name).read_text(encoding="utf-8")
        assert "Kvashnina" not in text and "secret-place" not in text and "5550123987" not in text


def test_append_with_another_key_is_refused_with_both_fingerprints(tmp_path):
    key_a, key_b = tmp_path / "a.key", tmp_path / "b.key"
    run("keygen", str(key_a))
    run("keygen", str(key_b))
    out = tmp_path / "ds"
    first = person_export(tmp_path / "one" / "result.json")
    assert run("convert", str(first), "-o", str(out), "--pseudonymize", "--key-file", str(key_a), "-q").exit_code == 0
    second = write_export(tmp_path / "two" / "result.json", good_messages(4, start_ts=1720000000))
    result = run("convert", str(second), "--append", str(out), "--pseudonymize", "--key-file", str(key_b), "-q")
    assert result.exit_code == 2 and result.stdout == ""
    fp_a, fp_b = fingerprint(load_key(key_a)), fingerprint(load_key(key_b))
    assert result.stderr == (
        f"Error: {out} was pseudonymized with another key (fingerprint {fp_a}, this key has {fp_b}); "
        "the same persons would get other pseudonyms\n"
        "Hint: pass the --key-file the dataset was made with\n"
    )
    result = run("convert", str(second), "--append", str(out), "-q")
    assert result.exit_code == 2 and "appending without --pseudonymize would add real identities" in result.stderr
    inside = out / "k.key"
    inside.write_text(key_a.read_text())
    result = run("convert", str(second), "--append", str(out), "--pseudonymize", "--key-file", str(inside), "-q")
    assert result.exit_code == 2 and "is inside the dataset folder" in result.stderr
    inside.unlink()
    result = run("convert", str(second), "--append", str(out), "--pseudonymize", "--key-file", str(key_a), "-q")
    assert result.exit_code == 0
