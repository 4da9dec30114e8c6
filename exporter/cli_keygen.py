"""`tgexport keygen KEY`: a new random pseudonymization key, written once with mode 0600."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .pseudonymize import KEY_BYTES, fingerprint, new_key, write_key


@click.command("keygen")
@click.argument("key", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the key's path and fingerprint as JSON on stdout.")
def keygen(key: Path, as_json: bool) -> None:
    """Write a new random pseudonymization key to KEY (never overwrites an existing file).

    The key is 32 random bytes, stored as 64 hex digits, readable by you only (mode 0600).
    Keep it outside every dataset and back it up: the same key gives the same pseudonyms in
    every run, and without it new data cannot be linked to old pseudonyms. Datasets record
    only its fingerprint.

    \b
    Examples:
      tgexport keygen ~/keys/project.key
      tgexport convert result.json -o dataset --pseudonymize --key-file ~/keys/project.key
    """
    secret = new_key()
    write_key(key, secret)
    print_ = fingerprint(secret)
    if as_json:
        click.echo(json.dumps({"path": str(key), "bytes": KEY_BYTES, "fingerprint": print_}))
        return
    click.echo(f"Wrote a new {KEY_BYTES}-byte key to {key} (fingerprint {print_}).", err=True)
    click.echo("Keep it outside the dataset and back it up; datasets record only the fingerprint.", err=True)
