"""Rendering for the terminal: progress bars and the end-of-run summary (stderr only)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from .pipeline import RunReport

MAX_PARTITION_ROWS = 36


def stderr_console() -> Console:
    console = Console(stderr=True, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=True, highlight=False, width=110, no_color=True)
    return console


class ProgressReporter:
    """A `Reporter` that shows one progress bar per stage, in bytes of input."""

    def __init__(self, console: Console, enabled: bool = True) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not enabled or not console.is_terminal,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> ProgressReporter:
        self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.stop()

    def stage(self, name: str, total: int | None = None) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=self._progress.tasks[-1].total or 0)
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(name, total=total)

    def advance(self, amount: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, amount)


def render_summary(console: Console, report: RunReport) -> None:
    """The end-of-run summary: per input counts, skipped inputs, partitions, where things went."""
    model = report.model
    table = Table(title=f"tgexport convert — run {model.run_id}", title_justify="left")
    for column in ("input", "format", "read", "written", "merged", "quarantined", "skipped"):
        table.add_column(column, justify="left" if column in ("input", "format") else "right", overflow="fold")
    for item in model.inputs:
        table.add_row(
            item.path,
            item.format or "",
            *(str(v) for v in (item.read, item.written, item.merged, item.quarantined, sum(item.skipped.values()))),
        )
    totals = model.totals()
    table.add_row(
        "total",
        "",
        *(str(totals[k]) for k in ("read", "written", "merged", "quarantined", "skipped")),
        end_section=True,
    )
    console.print(table)
    _reasons(console, model)
    _partitions(console, model)
    _workers(console, report.results)
    console.print(
        f"Wrote {totals['rows']} rows in {totals['files']} files to {report.output}/posts ({model.output_format})."
    )
    if model.rejects:
        console.print(
            f"Quarantined {model.rejects['rows']} items with their reasons: {report.output}/{model.rejects['path']}"
        )
    balance = totals["written"] + totals["merged"] + totals["quarantined"] + totals["skipped"]
    state = "ok" if balance == totals["read"] else "MISMATCH"
    console.print(
        f"Counts: read {totals['read']} = written {totals['written']} + merged {totals['merged']} "
        f"+ quarantined {totals['quarantined']} + skipped {totals['skipped']} ({state})"
    )


def _reasons(console: Console, model: Any) -> None:
    lines = []
    for item in model.inputs:
        for reason, count in sorted(item.skipped.items()):
            lines.append(f"  skipped {count} × {reason}  [{item.path}]")
        for reason, count in sorted(item.quarantined_by_reason.items()):
            lines.append(f"  quarantined {count} × {reason}  [{item.path}]")
    for skipped in model.skipped_inputs:
        lines.append(f"  input not converted: {skipped['path']} — {skipped['reason']}")
    if lines:
        console.print("Reasons:")
        for line in lines:
            console.print(line, markup=False)


def _partitions(console: Console, model: Any) -> None:
    partitions = model.partitions()
    if not partitions:
        return
    keys = [k for k in partitions[0] if k not in ("rows", "files")]
    if len(partitions) > MAX_PARTITION_ROWS and "year" in keys:
        by_year: dict[Any, list[int]] = {}
        for p in partitions:
            entry = by_year.setdefault(p["year"], [0, 0])
            entry[0] += p["rows"]
            entry[1] += 1
        table = Table(title=f"rows per partition ({len(partitions)} partitions, summed by year)", title_justify="left")
        for column in ("year", "partitions", "rows"):
            table.add_column(column, justify="right")
        for year, (rows, count) in by_year.items():
            table.add_row(_label(year), str(count), str(rows))
    else:
        table = Table(title="rows per partition", title_justify="left")
        for column in [*keys, "files", "rows"]:
            table.add_column(column, justify="right")
        for p in partitions:
            table.add_row(*(_label(p[k]) for k in keys), str(p["files"]), str(p["rows"]))
    console.print(table)


def _workers(console: Console, results: list[Any]) -> None:
    """What each Dask worker did (only runs on Dask stamp their results with a worker)."""
    from .distributed import worker_summary

    rows = worker_summary(results)
    if not rows:
        return
    table = Table(title="work per Dask worker", title_justify="left")
    for column in ("worker", "tasks", "items", "bytes", "seconds"):
        table.add_column(column, justify="left" if column == "worker" else "right")
    for row in rows:
        table.add_row(row["worker"], *(str(row[k]) for k in ("tasks", "items", "bytes")), f"{row['seconds']:.2f}")
    console.print(table)


def _label(value: Any) -> str:
    return "(no date)" if value is None else str(value)
