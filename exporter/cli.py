"""The `tgexport` command line. Translates options, renders reports, maps errors to exit codes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__, converters, writers
from .errors import TgExportError, UsageError
from .executors import default_jobs

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_QUARANTINED = 0, 1, 2, 3


class TgExportGroup(click.Group):
    """Turns every TgExportError (and any unexpected failure) into `Error:` / `Hint:` lines."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TgExportError as exc:
            _fail(exc.message, exc.hint, exc.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            _fail("interrupted", "nothing was written; run the command again", 130)
        except Exception as exc:  # the one place that catches everything
            if os.environ.get("TGEXPORT_DEBUG") == "1":
                raise
            _fail(
                f"internal error: {type(exc).__name__}: {exc}",
                "rerun with TGEXPORT_DEBUG=1 to see the traceback, and report it",
                EXIT_ERROR,
            )


def _fail(message: str, hint: str | None, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    if hint:
        click.echo(f"Hint: {hint}", err=True)
    sys.exit(code)


@click.group(cls=TgExportGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="tgexport")
def main() -> None:
    """Turn Telegram archive dumps into one validated, analysis-ready dataset.

    \b
    Examples:
      tgexport convert result.json -o dataset
      tgexport convert ChatExport_2024-05-01/ more_dumps/ -o dataset --to jsonl
      tgexport schema --arrow
      tgexport formats
    """


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "-o",
    "--output",
    metavar="DATASET",
    help="Dataset folder to create, or an object-store prefix (s3://bucket/prefix).",
)
@click.option(
    "--append",
    "append_to",
    metavar="DATASET",
    help="Add the inputs to an existing dataset (new evidence is merged; known inputs are skipped).",
)
@click.option(
    "--to", "to", type=click.Choice(writers.names()), default="parquet", show_default=True, help="Data file format."
)
@click.option(
    "--from",
    "from_format",
    type=click.Choice(converters.names()),
    default=None,
    help="Force an input format instead of detecting it from the content.",
)
@click.option(
    "--partition-by", default="year,month", show_default=True, help="Hive partition keys, from chat, year, month."
)
@click.option(
    "--tz",
    "tz_name",
    default=None,
    metavar="ZONE",
    help="Time zone of the computer that made an export whose dates carry no zone (e.g. Europe/Kyiv).",
)
@click.option(
    "--on-invalid",
    type=click.Choice(["quarantine", "fail", "skip"]),
    default="quarantine",
    show_default=True,
    help="What to do with items that fail validation.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder (or s3:// prefix).")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Workers (default: all cores): threads for Telegram Desktop JSON, else processes. "
    "Big Desktop JSON, Telethon JSON-lines and TGDataset files are split between them.",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    help="Run the tasks on Dask: tcp://HOST:8786 (a running cluster) or `local` (an embedded cluster "
    "of --jobs workers). Needs the extra tgexport[dask]; see docs/distributed.md.",
)
@click.option(
    "--engine",
    type=click.Choice(["process", "dask"]),
    default=None,
    help="Where --jobs run: process = the local pool (default), dask = a LocalCluster.",
)
@click.option(
    "--s3-endpoint",
    metavar="URL",
    default=None,
    help="Endpoint of an S3-compatible store for s3:// inputs and outputs (credentials: AWS environment).",
)
@click.option("--pseudonymize", is_flag=True, help="Replace private persons by keyed pseudonyms (needs --key-file).")
@click.option(
    "--key-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    metavar="KEY",
    help="Pseudonymization key from `tgexport keygen KEY`; keep it outside the dataset.",
)
@click.option("--pseudonymize-chats", is_flag=True, help="Pseudonymize channels and groups too, not only persons.")
@click.option("--redact-text", is_flag=True, help="Also pseudonymize mentions, phones and e-mails inside the text.")
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars and no summary on stderr.")
def convert(
    inputs: tuple[str, ...],
    output: str | None,
    append_to: str | None,
    to: str,
    from_format: str | None,
    partition_by: str,
    tz_name: str | None,
    on_invalid: str,
    overwrite: bool,
    jobs: int | None,
    scheduler: str | None,
    engine: str | None,
    s3_endpoint: str | None,
    pseudonymize: bool,
    key_file: Path | None,
    pseudonymize_chats: bool,
    redact_text: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Convert dumps (files or folders) into a partitioned dataset.

    Formats are detected from the content. Every item ends up written, skipped with a reason,
    or quarantined in rejects/ with every violation; exit code 3 means some were quarantined.

    \b
    Examples:
      tgexport convert result.json -o dataset
      tgexport convert old_export/result.json -o dataset --tz Europe/Moscow
      tgexport convert dumps/ -o dataset --to jsonl.zst --partition-by chat,year,month
      tgexport convert result.json -o dataset --overwrite --jobs 2
      tgexport convert next_month/result.json --append dataset
      tgexport convert dumps/ -o s3://bucket/telegram --scheduler tcp://10.0.0.5:8786
      tgexport convert result.json -o dataset --pseudonymize --key-file ~/keys/project.key
    """
    from .distributed import resolve_scheduler
    from .manifest import manifest_dict
    from .objectstore import is_uri, location
    from .pipeline import ConvertRequest, parse_partition_by
    from .pipeline import convert as run_convert
    from .pseudonymize import spec_from_options
    from .report import ProgressReporter, render_summary, stderr_console

    if (output is None) == (append_to is None):
        raise UsageError(
            "give either -o DATASET (a new dataset) or --append DATASET (an existing one)",
            hint="tgexport convert INPUT... -o DATASET",
        )
    request = ConvertRequest(
        inputs=list(inputs),
        output=location(output or append_to),
        append=append_to is not None,
        to=to,
        from_format=from_format,
        partition_by=parse_partition_by(partition_by),
        tz_name=tz_name,
        on_invalid=on_invalid,
        overwrite=overwrite,
        jobs=jobs or default_jobs(),
        command=["tgexport", *sys.argv[1:]],
        scheduler=resolve_scheduler(scheduler, engine),
        s3_endpoint=s3_endpoint,
        pseudonymize=spec_from_options(
            pseudonymize, key_file, pseudonymize_chats, redact_text, location(output or append_to)
        ),
    )
    if _AS_COMMAND and request.scheduler is None:
        from .executors import leave_pandas_unloaded

        leave_pandas_unloaded()
    console = stderr_console()
    with ProgressReporter(console, enabled=not quiet) as reporter:
        report = run_convert(request, reporter)
    if not quiet:
        from .cli_stats import render_coverage
        from .coverage import coverage

        render_summary(console, report)
        if not is_uri(report.output):
            render_coverage(console, coverage(report.output), detailed=False)
    if as_json:
        click.echo(json.dumps(manifest_dict(report.model), ensure_ascii=False, indent=2))
    sys.exit(report.exit_code)


@main.command()
@click.option("--arrow", is_flag=True, help="Print the derived Arrow schema instead.")
@click.option("--markdown", is_flag=True, help="Print the data dictionary (codebook) as Markdown instead.")
def schema(arrow: bool, markdown: bool) -> None:
    """Print the post record's JSON Schema (or the Arrow schema or codebook derived from it).

    \b
    Examples:
      tgexport schema > post.schema.json
      tgexport schema --arrow
      tgexport schema --markdown > docs/data-dictionary.md
    """
    from .schema import arrow_schema, load_schema

    if markdown:
        from .codebook import render_markdown

        click.echo(render_markdown(), nl=False)
    elif arrow:
        click.echo(arrow_schema().to_string(show_field_metadata=False, show_schema_metadata=False))
    else:
        click.echo(json.dumps(load_schema(), ensure_ascii=False, indent=2))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable list.")
def formats(as_json: bool) -> None:
    """List the input converters and output writers available.

    \b
    Examples:
      tgexport formats
      tgexport formats --json
    """
    inputs = [{"name": c.name, "description": c.description} for c in converters.all_converters()]
    outputs = writers.names()
    if as_json:
        click.echo(json.dumps({"inputs": inputs, "outputs": outputs}, indent=2))
        return
    click.echo("Input formats (detected from content; force one with --from):")
    for conv in inputs:
        click.echo(f"  {conv['name']:<16} {conv['description']}")
    click.echo("Output formats (--to):")
    for name in outputs:
        click.echo(f"  {name}")


_AS_COMMAND = False  # True in the `tgexport` process (not when tests call `main`)


def run() -> None:
    """The `tgexport` console script: `main`, in a process of its own."""
    global _AS_COMMAND
    _AS_COMMAND = True
    main()


from .cli_stats import stats  # noqa: E402

main.add_command(stats)

from .cli_validate import validate  # noqa: E402

main.add_command(validate)

from .cli_detect import detect  # noqa: E402

main.add_command(detect)

from .cli_keygen import keygen  # noqa: E402

main.add_command(keygen)
