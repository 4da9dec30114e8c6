"""`tgexport stats DATASET`: the coverage report (also printed at the end of `convert`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

MAX_MONTH_COLUMNS = 24


def render_coverage(console: Console, report: dict[str, Any], detailed: bool = True) -> None:
    """Per chat: posts, id range and gaps, date span, service share; then months, nulls, warnings."""
    table = Table(title="coverage per chat", title_justify="left")
    for column in ("chat", "title", "posts", "ids", "missing ids", "largest gap", "dates", "service"):
        table.add_column(column, justify="right" if column in ("posts", "missing ids", "service") else "left")
    for chat in report["chats"]:
        ids = f"{chat['min_id']}–{chat['max_id']}" if chat["min_id"] is not None else "—"
        gap = chat["largest_gaps"][0] if chat["largest_gaps"] else None
        largest = f"{gap['from']}–{gap['to']} ({gap['missing']})" if gap else "—"
        dates = f"{(chat['first_date'] or '—')[:10]} … {(chat['last_date'] or '—')[:10]}"
        table.add_row(
            chat["chat"],
            (chat["title"] or "")[:28],
            str(chat["posts"]),
            ids,
            f"{chat['missing_ids']} ({chat['missing_share']:.1%})",
            largest,
            dates,
            f"{chat['service_share']:.1%}",
        )
    console.print(table)
    if detailed:
        for chat in report["chats"]:
            _months(console, chat)
            _nulls(console, chat)
    if report["quarantined"]:
        reasons = ", ".join(f"{k} ({v})" for k, v in report["quarantined_by_reason"].items())
        console.print(f"Quarantined items: {report['quarantined']} — {reasons}", markup=False)
    for warning in report["warnings"]:
        console.print(f"Warning: {warning}", markup=False)


def _months(console: Console, chat: dict[str, Any]) -> None:
    months = list(chat["posts_per_month"].items())
    shown = months[-MAX_MONTH_COLUMNS:]
    prefix = f"(last {len(shown)} of {len(months)} months) " if len(months) > len(shown) else ""
    text = ", ".join(f"{m}: {n}" for m, n in shown)
    console.print(f"{chat['chat']} posts per month {prefix}— {text}", markup=False)


def _nulls(console: Console, chat: dict[str, Any]) -> None:
    shares = ", ".join(f"{k} {v:.0%}" for k, v in chat["null_share"].items())
    console.print(f"{chat['chat']} share of nulls per field — {shares or 'none'}", markup=False)


@click.command()
@click.argument("dataset", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def stats(dataset: Path, as_json: bool) -> None:
    """Coverage of a dataset: per chat the post id range and the gaps in it, the date span,
    posts per month, the share of service messages, per field the share of nulls, quarantine
    counts, and warnings (e.g. a full-account export that holds only your own messages).

    \b
    Examples:
      tgexport stats dataset
      tgexport stats dataset --json > coverage.json
    """
    from .coverage import coverage
    from .report import stderr_console

    report = coverage(dataset)
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    console = stderr_console()
    console.file = sys.stdout
    render_coverage(console, report)
