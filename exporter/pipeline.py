"""The driver of `tgexport convert`: plan the inputs, run tasks, gather, commit atomically.

Policy lives here (which inputs, which formats, what happens to bad items); converters only
read and writers only write. Nothing is printed: progress goes to a `Reporter`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import __version__, converters, objectstore, writers
from .arrowbuild import merge_needed
from .converters.base import ConvertOptions
from .errors import InputError, OutputError, TgExportError, UsageError
from .executors import make_executor
from .manifest import MANIFEST, SUCCESS, InputRecord, RunModel, manifest_dict, now_utc, redact_command, write_json
from .mergeio import merge_into, rewrite_in_place
from .progress import Reporter, progress_channel
from .provenance import write_documents
from .pseudonymize import PseudonymizeSpec
from .pseudonymize import describe as describe_pseudonymization
from .ranged import expected_tasks, native_work, start_planning, submit_task
from .schema import canonical_json, schema_id, schema_sha256
from .sources import InputUnit, Skipped, describe_head, skipped_summary, sniff
from .task import TaskResult, TaskSpec
from .writers.base import WrittenFile, discard_folder

PARTITION_KEYS = ("chat", "year", "month")
ON_INVALID = ("quarantine", "fail", "skip")


class _Silent:
    def stage(self, name: str, total: int | None = None) -> None:
        return None

    def advance(self, amount: int) -> None:
        return None


@dataclass
class ConvertRequest:
    inputs: list[str]
    output: Path | str  # a folder, or an object-store URI (s3://bucket/prefix)
    to: str = "parquet"
    from_format: str | None = None
    partition_by: tuple[str, ...] = ("year", "month")
    tz_name: str | None = None
    on_invalid: str = "quarantine"
    overwrite: bool = False
    append: bool = False
    jobs: int = 1
    command: list[str] = field(default_factory=list)
    scheduler: str | None = None  # Dask: "local" or tcp://HOST:8786 (exporter/distributed.py)
    s3_endpoint: str | None = None  # S3-compatible store for s3:// inputs and outputs
    pseudonymize: PseudonymizeSpec | None = None  # --pseudonymize: the key (in memory only) and flags


@dataclass
class Planned:
    unit: InputUnit
    fmt: str
    sha256: str
    feed: Any = field(default=None, compare=False, repr=False)  # ranged.PlanFeed: ranges planned early


def cancel_plans(planned: list[Planned]) -> None:
    """Stop the early range planning of inputs that will not be converted after all."""
    for item in planned:
        if item.feed is not None:
            item.feed.cancel()


@dataclass
class RunReport:
    model: RunModel
    output: Path | str
    results: list[TaskResult]

    @property
    def exit_code(self) -> int:
        return 3 if self.model.totals()["quarantined"] else 0


def parse_partition_by(text: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in keys if k not in PARTITION_KEYS]
    if bad or len(set(keys)) != len(keys) or not keys:
        raise UsageError(
            f"--partition-by {text!r} is not valid", hint="use keys from chat, year, month, e.g. chat,year,month"
        )
    return keys


def convert(request: ConvertRequest, reporter: Reporter | None = None) -> RunReport:
    """Run one conversion end to end; raises TgExportError on anything the user must fix."""
    reporter = reporter or _Silent()
    started = now_utc()
    options = _convert_options(request)
    writers.get(request.to)
    if request.from_format:
        converters.get(request.from_format)
    if request.on_invalid not in ON_INVALID:
        raise UsageError(f"--on-invalid {request.on_invalid!r}", hint="choose quarantine, fail or skip")
    if request.append and request.overwrite:
        raise UsageError("--append and --overwrite exclude each other", hint="pass one of them")
    if request.append:
        from .append import append_run

        if objectstore.is_uri(request.output):
            raise UsageError(
                "--append to an object store is not supported", hint="append to a local copy, then upload it"
            )

        return append_run(request, reporter, options, started)
    output = request.output
    target = objectstore.output_target(output, request.s3_endpoint, request.overwrite)
    target.check() if target else _check_output(output, request.overwrite)
    planned, skipped = _plan(request, reporter)
    try:
        run_id = _run_id(planned, request)
        staging = _make_staging(target.staging_anchor() if target else output, run_id)
    except BaseException:
        cancel_plans(planned)
        raise
    try:
        results = _run_tasks(planned, request, options, staging, run_id, reporter, target)
        files = [(staging, f) for r in results for f in r.files]
        reporter.stage("merging duplicates", None)
        if merge_needed([r.keys for r in results]):  # tasks report whether any key can repeat
            files = merge_into(
                files,
                {r.sha256: r for r in results},
                run_id,
                "chat" in request.partition_by,
                rewrite_in_place(request.to),
            )
        model = build_model(
            request,
            run_id,
            started,
            _input_records(results),
            file_dicts(files),
            _gather_rejects(results, staging, run_id),
            skipped,
        )
        write_metadata(staging, model)
        shutil.rmtree(staging / ".tasks", ignore_errors=True)
        if target:
            reporter.stage("publishing", None)
            target.publish(staging, results, model.files)  # and removes its local staging
        else:
            _commit(staging, output, run_id)
    except BaseException:
        cancel_plans(planned)
        discard_folder(staging)  # Dask tasks may still be writing into it
        if target:
            target.abandon()
        raise
    return RunReport(model, output, results)


def write_metadata(root: Path, model: RunModel) -> None:
    """Every rendering of the run model, then `_SUCCESS` last."""
    write_json(root / MANIFEST, manifest_dict(model))
    write_documents(root, model)
    _write_success(root, model.run_id)


def _convert_options(request: ConvertRequest) -> ConvertOptions:
    if not request.tz_name:
        return ConvertOptions()
    try:
        return ConvertOptions(tz=ZoneInfo(request.tz_name), tz_name=request.tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"unknown time zone {request.tz_name!r}", hint="use an IANA zone name such as Europe/Kyiv or UTC"
        ) from None


def _check_output(output: Path, overwrite: bool) -> None:
    if output.exists() and not output.is_dir():
        raise OutputError(f"output {output} exists and is not a folder", hint="choose another -o path")
    if output.is_dir() and any(output.iterdir()) and not overwrite:
        raise OutputError(
            f"output folder {output} already exists and is not empty",
            hint="pass --overwrite to replace it, or choose another -o path",
        )


def _plan(request: ConvertRequest, reporter: Reporter) -> tuple[list[Planned], list[dict[str, str]]]:
    found: list[Skipped] = []
    units = list(objectstore.discover_inputs(request.inputs, found, request.s3_endpoint))
    skipped: list[dict[str, str]] = [{"path": s.display, "reason": s.reason} for s in found]
    chosen: list[tuple[InputUnit, str]] = []
    for unit in units:
        fmt = request.from_format or _detect(unit, skipped)
        if fmt:
            chosen.append((unit, fmt))
    reporter.stage("hashing inputs", sum(u.size for u, _ in chosen))
    planned: list[Planned] = []
    seen: dict[str, str] = {}
    for unit, fmt in chosen:
        feed = start_planning(fmt, unit, request.jobs, request.pseudonymize)  # while hashing
        try:
            digest = _hash(unit, reporter)
        except BaseException:
            cancel_plans(planned)
            if feed is not None:
                feed.cancel()
            raise
        if digest in seen:
            skipped.append({"path": unit.display, "reason": f"same bytes as {seen[digest]}"})
            if feed is not None:
                feed.cancel()
            continue
        seen[digest] = unit.display
        planned.append(Planned(unit, fmt, digest, feed))
    if not planned:
        raise InputError(
            "nothing to convert: no input was recognised as a Telegram dump" + skipped_summary(skipped),
            hint="run `tgexport detect INPUT...` to see what each file looks like",
        )
    return planned, skipped


def _hash(unit: InputUnit, reporter: Reporter) -> str:
    try:
        return unit.sha256(reporter.advance)
    except OSError as exc:
        raise InputError(f"cannot read {unit.display}: {exc.strerror or exc}", hint="check file permissions") from None


def _detect(unit: InputUnit, skipped: list[dict[str, str]]) -> str | None:
    fmt, _, head = sniff(unit)
    if fmt:
        return fmt
    seen = describe_head(head)
    if not unit.explicit:
        skipped.append({"path": unit.display, "reason": f"not a recognised Telegram dump ({seen})"})
        return None
    raise InputError(
        f"{unit.display} is not a format tgexport recognises: it is {seen}",
        hint="known formats: " + ", ".join(converters.names()) + "; pass --from FORMAT to force one",
    )


def _run_id(planned: list[Planned], request: ConvertRequest) -> str:
    basis = {
        "tool": __version__,
        "schema": schema_sha256(),
        "inputs": sorted([p.sha256, p.fmt] for p in planned),
        "to": request.to,
        "partition_by": list(request.partition_by),
        "tz": request.tz_name,
        "on_invalid": request.on_invalid,
    }
    if request.pseudonymize is not None:  # the key's fingerprint, never the key
        basis["pseudonymization"] = describe_pseudonymization(request.pseudonymize)
    return hashlib.sha256(canonical_json(basis)).hexdigest()[:16]


def _make_staging(output: Path, run_id: str) -> Path:
    parent = output.absolute().parent
    if not parent.is_dir():
        raise OutputError(
            f"the folder that should hold {output} does not exist: {parent}",
            hint="create it first, or choose another -o path",
        )
    staging = parent / f".{output.name}.staging-{run_id}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (staging / "posts").mkdir(parents=True)
        probe = staging / ".probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise OutputError(
            f"cannot write to {parent}: {exc.strerror or exc}", hint="choose an output folder you can write to"
        ) from None
    return staging


def _footer(run_id: str, planned: Planned, request: ConvertRequest) -> dict[str, Any]:
    return {
        "version": "1.0",
        "tool": {"name": "tgexport", "version": __version__},
        "schema": {"id": schema_id(), "sha256": schema_sha256()},
        "input": {"sha256": planned.sha256, "format": planned.fmt},
        "sort_keys": ["chat_id", "chat_username", "post_id"],
        "dataset": {"manifest": MANIFEST},
    }


def _run_tasks(
    planned: list[Planned],
    request: ConvertRequest,
    options: ConvertOptions,
    staging: Path,
    run_id: str,
    reporter: Reporter,
    target: Any = None,
) -> list[TaskResult]:
    reporter.stage("converting", sum(p.unit.size for p in planned))
    tasks = len(planned) if request.scheduler else expected_tasks(planned, request.jobs)
    native = all(native_work(p.fmt, p.unit, request.pseudonymize) for p in planned)
    executor = make_executor(request.jobs, tasks, request.scheduler, native, staging=staging, target=target)
    inline = executor.__class__.__name__ == "InlineExecutor"
    channel = getattr(executor, "progress_channel", None)  # the Dask engine brings its own
    progress, stop = channel(reporter) if channel else progress_channel(reporter, inline)
    try:
        specs = [
            TaskSpec(
                i,
                p.unit,
                p.fmt,
                p.sha256,
                staging,
                request.to,
                request.partition_by,
                options,
                request.on_invalid,
                run_id,
                _footer(run_id, p, request),
                progress,
                pseudonymize=request.pseudonymize,
            )
            for i, p in enumerate(planned)
        ]
        futures = [  # big inputs split, with the ranges planned while they were hashed
            submit_task(executor, spec, request.jobs, item.feed) for spec, item in zip(specs, planned, strict=True)
        ]
        results = []
        for future in futures:
            try:
                results.append(future.result())
            except TgExportError:
                for other in futures:
                    other.cancel()
                raise
        return results
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        stop()


def _input_records(results: list[TaskResult]) -> list[InputRecord]:
    return [
        InputRecord(
            path=r.display,
            sha256=r.sha256,
            bytes=r.bytes,
            format=r.fmt,
            read=r.read,
            written=r.written,
            merged=r.merged,
            quarantined=r.quarantined,
            skipped=dict(r.skipped),
            quarantined_by_reason=dict(r.reasons),
            run_id=r.run_id,
        )
        for r in results
    ]


def _options(request: ConvertRequest) -> dict[str, Any]:
    return {
        "to": request.to,
        "from": request.from_format,
        "partition_by": list(request.partition_by),
        "tz": request.tz_name,
        "on_invalid": request.on_invalid,
    }


def build_model(
    request: ConvertRequest,
    run_id: str,
    started: Any,
    inputs: list[InputRecord],
    files: list[dict[str, Any]],
    rejects: dict[str, Any] | None,
    skipped: list[dict[str, str]],
    history: list[dict[str, Any]] | None = None,
) -> RunModel:
    """The run model every rendering (manifest, datapackage, croissant) is made from."""
    return RunModel(
        run_id=run_id,
        command=redact_command(request.command),
        options=_options(request),
        started_at=started,
        finished_at=now_utc(),
        output_format=request.to,
        partition_by=request.partition_by,
        inputs=inputs,
        files=sorted(files, key=lambda f: f["path"]),
        rejects=rejects,
        skipped_inputs=skipped,
        history=history or [],
        pseudonymization=describe_pseudonymization(request.pseudonymize),
    )


def file_dicts(files: list[tuple[Path, WrittenFile]]) -> list[dict[str, Any]]:
    return [f.to_dict() for _, f in files]


def _gather_rejects(results: list[TaskResult], staging: Path, run_id: str) -> dict[str, Any] | None:
    parts = [staging / r.rejects for r in results if r.rejects]
    if not parts:
        return None
    target = staging / "rejects" / f"{run_id}.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
    rows = sum(r.quarantined for r in results)
    return {
        "path": target.relative_to(staging).as_posix(),
        "rows": rows,
        "bytes": target.stat().st_size,
        "sha256": digest.hexdigest(),
    }


def _write_success(staging: Path, run_id: str) -> None:
    manifest_sha = hashlib.sha256((staging / MANIFEST).read_bytes()).hexdigest()
    write_json(
        staging / SUCCESS,
        {"tool": "tgexport", "run_id": run_id, "manifest": {"path": MANIFEST, "sha256": manifest_sha}},
    )


def _commit(staging: Path, output: Path, run_id: str) -> None:
    """Rename the finished staging folder into place (replacing an old output atomically-ish)."""
    old = None
    if output.exists():
        old = output.absolute().parent / f".{output.name}.old-{run_id}"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(output, old)
    try:
        os.rename(staging, output)
    except OSError as exc:
        if old is not None:
            os.rename(old, output)
        raise OutputError(
            f"cannot move the finished dataset into {output}: {exc.strerror or exc}",
            hint="check that nothing else is using that folder",
        ) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
