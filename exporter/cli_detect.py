"""`tgexport detect`: what each input is, without writing anything."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict

import click

from . import converters
from .archive_streams import format_size
from .errors import InputError
from .sources import Detection, detect_inputs

BASIS_MARK = {"counted": "", "extrapolated": "~", "lower bound": ">="}


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def detect(inputs: tuple[str, ...], as_json: bool) -> None:
    """Show what each input is: format, confidence and an item count estimate. Writes nothing.

    Files, folders (walked recursively) and archives (.zip, .tar, .tar.gz, .tgz, .gz, .zst,
    nested; recognised by content) are read as `convert` would read them; archive members are
    shown as `archive.zip!/inner/path`. Items are counted from the first MiB of each input:
    exact when the input is no larger, else extrapolated (`~`), or a lower bound (`>=`) when
    the size is unknown. Exit code 0 when at least one input is recognised, 1 when none is.

    \b
    Examples:
      tgexport detect result.json
      tgexport detect dumps/ ChatExport.zip backup.tar.gz
      tgexport detect dumps/ --json | jq '.inputs[] | select(.status == "recognised")'
    """
    rows = detect_inputs(list(inputs))
    recognised = [r for r in rows if r.status == "recognised"]
    if as_json:
        click.echo(json.dumps(_report(rows), ensure_ascii=False, indent=2))
    else:
        for line in _table(rows):
            click.echo(line)
        click.echo(_summary(rows), err=True)
    if not recognised:
        raise InputError(
            "no input was recognised as a Telegram dump",
            hint="known formats: " + ", ".join(converters.names()) + "; `convert --from FORMAT` forces one",
        )


def _report(rows: list[Detection]) -> dict:
    totals = Counter(r.status for r in rows)
    return {
        "inputs": [asdict(r) for r in rows],
        "totals": {
            "inputs": len(rows),
            **{status: totals[status] for status in ("recognised", "unrecognised", "skipped")},
            "items": sum(r.items or 0 for r in rows),
        },
    }


def _table(rows: list[Detection]) -> list[str]:
    lines = [f"{'FORMAT':<15} {'CONF':>4} {'ITEMS':>10} {'SIZE':>11}  INPUT"]
    for row in rows:
        fmt = row.format or row.status
        conf = f"{row.confidence:.2f}" if row.confidence is not None else "-"
        items = f"{BASIS_MARK.get(row.items_basis or '', '')}{row.items:,}" if row.items is not None else "-"
        size = "-" if row.bytes is None else ("" if row.bytes_exact else "~") + format_size(row.bytes)
        text = f"{fmt:<15} {conf:>4} {items:>10} {size:>11}  {row.path}"
        for extra in (row.reason, row.note):
            if extra:
                text += f"  [{extra}]"
        lines.append(text)
    return lines


def _summary(rows: list[Detection]) -> str:
    statuses = Counter(r.status for r in rows)
    formats = Counter(r.format for r in rows if r.format)
    found = ", ".join(f"{name} {count}" for name, count in sorted(formats.items()))
    items = sum(r.items or 0 for r in rows)
    return (
        f"{len(rows)} inputs: {statuses['recognised']} recognised"
        + (f" ({found}; about {items:,} items)" if found else "")
        + f", {statuses['unrecognised']} unrecognised, {statuses['skipped']} skipped. Nothing was written."
    )
