"""`tgexport convert --append DATASET`: add new inputs to an existing dataset.

Inputs already in the manifest (same sha256) are skipped and reported. New inputs are
converted into a hidden staging folder inside the dataset, merged with the existing rows
(only files that hold a duplicate are rewritten, under their own names), and published file
by file with `os.replace`; `_manifest.json` is replaced last, so a reader that trusts the
manifest never sees a half-appended dataset. Appending the same dump twice changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa

from .errors import UsageError
from .manifest import MANIFEST, SUCCESS, InputRecord, RunModel
from .mergeio import merge_into, read_footer, write_one
from .pipeline import (
    ConvertRequest,
    Planned,
    Reporter,
    RunReport,
    _gather_rejects,
    _input_records,
    _plan,
    _run_tasks,
    build_model,
    cancel_plans,
    file_dicts,
    write_metadata,
)
from .pseudonymize import check_append
from .schema import canonical_json
from .writers.base import WrittenFile, discard_folder


def load_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.is_file():
        raise UsageError(
            f"{root} is not a tgexport dataset (no {MANIFEST})",
            hint="convert without --append first, or point --append at the dataset folder",
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}", hint="run `tgexport validate` on the dataset") from None


def _check_compatible(manifest: dict[str, Any], request: ConvertRequest) -> None:
    old = manifest.get("options", {})
    if old.get("to") != request.to:
        raise UsageError(
            f"the dataset holds {old.get('to')} files, not {request.to}", hint=f"pass --to {old.get('to')}"
        )
    if tuple(old.get("partition_by", ())) != request.partition_by:
        keys = ",".join(old.get("partition_by", ()))
        raise UsageError(f"the dataset is partitioned by {keys}", hint=f"pass --partition-by {keys}")
    check_append(manifest, request.pseudonymize, request.output)


def append_run(request: ConvertRequest, reporter: Reporter, options: Any, started: Any) -> RunReport:
    root = request.output
    manifest = load_manifest(root)
    _check_compatible(manifest, request)
    planned, skipped = _plan(request, reporter)
    known = {entry["sha256"]: entry for entry in manifest["inputs"]}
    new: list[Planned] = []
    for item in planned:
        if item.sha256 in known:
            run = known[item.sha256].get("run_id") or manifest["run_id"]
            skipped.append({"path": item.unit.display, "reason": f"already in the dataset (run {run})"})
            cancel_plans([item])
        else:
            new.append(item)
    old_inputs = [InputRecord.from_dict(entry) for entry in manifest["inputs"]]
    if not new:
        return RunReport(_unchanged_model(manifest, request, started, old_inputs, skipped), root, [])
    basis = {"previous": manifest["run_id"], "inputs": sorted([p.sha256, p.fmt] for p in new)}
    run_id = hashlib.sha256(canonical_json(basis)).hexdigest()[:16]
    staging = root / f".append-{run_id}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (staging / "posts").mkdir(parents=True)
        results = _run_tasks(new, request, options, staging, run_id, reporter)
        publish = _Publisher(root, staging, request.to)
        old_files = [(root, WrittenFile(**entry)) for entry in manifest["files"]]
        new_files = [(staging, f) for r in results for f in r.files]
        counters: dict[str, Any] = {i.sha256: i for i in old_inputs} | {r.sha256: r for r in results}
        reporter.stage("merging duplicates", None)
        files = merge_into(old_files + new_files, counters, run_id, "chat" in request.partition_by, publish.rewrite)
        model = build_model(
            request,
            run_id,
            started,
            old_inputs + _input_records(results),
            file_dicts(files),
            _gather_rejects(results, staging, run_id),
            skipped,
            manifest.get("runs", []),
        )
        publish.commit(files, model)
    except BaseException:
        cancel_plans(new)
        raise
    finally:
        discard_folder(staging)  # on an error, Dask tasks may still be writing into it
    return RunReport(model, root, results)


class _Publisher:
    """Stages rewrites of existing files and publishes everything with os.replace."""

    def __init__(self, root: Path, staging: Path, to: str) -> None:
        self.root, self.staging, self.to = root, staging, to
        self.rewrites = staging / ".rewrites"
        self.rewrites.mkdir(exist_ok=True)
        self.deleted: list[str] = []

    def rewrite(self, base: Path, old: WrittenFile, table: pa.Table) -> WrittenFile | None:
        footer = read_footer(base / old.path)
        if base == self.staging:
            (base / old.path).unlink()
            return None if table.num_rows == 0 else write_one(base, old, table, self.to, footer)
        if table.num_rows == 0:
            self.deleted.append(old.path)
            return None
        return write_one(self.rewrites, old, table, self.to, footer)

    def commit(self, files: list[tuple[Path, WrittenFile]], model: RunModel) -> None:
        for base, written in files:
            source = base / written.path
            if base == self.staging:
                self._move(source, written.path)
            elif (self.rewrites / written.path).is_file():
                self._move(self.rewrites / written.path, written.path)
        for relpath in self.deleted:
            (self.root / relpath).unlink(missing_ok=True)
        if model.rejects:
            self._move(self.staging / model.rejects["path"], model.rejects["path"])
        meta = self.staging / ".meta"
        meta.mkdir()
        write_metadata(meta, model)
        names = sorted(p.name for p in meta.iterdir() if p.name != SUCCESS)
        for name in [*names, SUCCESS]:
            os.replace(meta / name, self.root / name)

    def _move(self, source: Path, relpath: str) -> None:
        target = self.root / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)


def _unchanged_model(
    manifest: dict[str, Any],
    request: ConvertRequest,
    started: Any,
    inputs: list[InputRecord],
    skipped: list[dict[str, str]],
) -> RunModel:
    """A model describing the dataset as it is, for the summary of a run that added nothing."""
    return build_model(
        request, manifest["run_id"], started, inputs, manifest["files"], None, skipped, manifest.get("runs", [])
    )
