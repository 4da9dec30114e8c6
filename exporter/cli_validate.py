"""`tgexport validate DATASET`: the click command; the checks live in validate_dataset.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from .validate_dataset import DatasetReport

EXIT_OK, EXIT_MISMATCH = 0, 1


@click.command("validate")
@click.argument("dataset")
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Re-validate at most N evenly spaced rows per file against the schema (default: every row).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--s3-endpoint", metavar="URL", default=None, help="Endpoint of an S3-compatible store (s3:// datasets).")
def validate(dataset: str, sample: int | None, as_json: bool, s3_endpoint: str | None) -> None:
    """Check DATASET against its manifest: hashes, row counts, schema, partitions.

    Recomputes every file's sha256, size and row count, re-validates rows against the JSON
    Schema, checks that every row lies in the partition its path names, and reports missing,
    extra and altered files and a manifest edited after the run. Exit code 0 when everything
    matches, 1 on any mismatch.

    \b
    Examples:
      tgexport validate dataset
      tgexport validate dataset --sample 1000
      tgexport validate dataset --json > validation.json
      tgexport validate s3://bucket/telegram --s3-endpoint http://127.0.0.1:9000
    """
    from .objectstore import is_uri, validate_uri
    from .validate_dataset import validate_dataset

    report = validate_uri(dataset, s3_endpoint, sample) if is_uri(dataset) else validate_dataset(Path(dataset), sample)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        for line in render(report):
            click.echo(line, err=True)
    sys.exit(EXIT_OK if report.ok else EXIT_MISMATCH)


def render(report: DatasetReport) -> list[str]:
    """The human-readable report (stderr)."""
    checked = f"rows: {report.rows_read} read, {report.rows_validated} re-validated against the schema"
    lines = [f"Dataset {report.root} (run {report.run_id}): {report.files_checked} files checked, {checked}."]
    if report.ok:
        return [*lines, "OK: every file, hash, row count and partition matches the manifest."]
    width = max(len(f.kind) for f in report.findings)
    lines.append(f"{len(report.findings)} problem(s):")
    lines += [f"  {f.kind:<{width}}  {f.path}: {f.message}" for f in report.findings]
    lines.append("FAILED: the dataset does not match its manifest.")
    return lines
