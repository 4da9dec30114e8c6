"""The Dask engine: a real LocalCluster (2 worker processes) gives the dataset a local run gives.

One cluster per module, reached by its tcp:// address like any running cluster. A task that
kills its worker once is retried and the output is still byte-identical; remote workers that
cannot see the staging folder upload their own files to an s3:// output (moto, loopback).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from functools import partial
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import good_messages, write_export
from test_objectstore import CREDENTIALS, local_files, mixed_inputs, s3  # noqa: F401 (s3 is a fixture)

from exporter import distributed as engine
from exporter import objectstore
from exporter.cli import main
from exporter.errors import OutputError, TgExportError
from exporter.pipeline import ConvertRequest, convert

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.xdist_group("dask")


@pytest.fixture(scope="module")
def cluster():
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CREDENTIALS.items():  # workers inherit them (uploads to the local S3)
            patch.setenv(name, value)
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.CRITICAL
        ) as running:
            yield running


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return mixed_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="module")
def local_run(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "ds"
    report = convert(ConvertRequest(inputs=inputs, output=out, jobs=1))
    return out, report


class Counting:
    def __init__(self) -> None:
        self.stages: dict[str, int] = {}
        self.current = ""

    def stage(self, name: str, total: int | None = None) -> None:
        self.current = name
        self.stages.setdefault(name, 0)

    def advance(self, amount: int) -> None:
        self.stages[self.current] += amount


def same_dataset(a: Path, b: Path) -> None:
    """Same data and rejects bytes, same file list and per-input counts in the manifests."""
    assert local_files(a, "posts/") == local_files(b, "posts/") != {}
    assert local_files(a, "rejects/") == local_files(b, "rejects/") != {}
    ma, mb = (json.loads((d / "_manifest.json").read_text()) for d in (a, b))
    assert ma["files"] == mb["files"] and ma["inputs"] == mb["inputs"] and ma["totals"] == mb["totals"]


def test_cluster_run_equals_a_local_run(cluster, inputs, local_run, tmp_path):
    out = tmp_path / "ds"
    reporter = Counting()
    report = convert(ConvertRequest(inputs=inputs, output=out, jobs=2, scheduler=cluster.scheduler_address), reporter)
    same_dataset(local_run[0], out)
    workers = engine.worker_summary(report.results)
    assert {w["worker"] for w in workers} <= set(cluster.scheduler_info["workers"])
    assert sum(w["tasks"] for w in workers) == len(report.results)
    assert sum(w["items"] for w in workers) == report.model.totals()["read"]
    assert reporter.stages["converting"] == sum(r.bytes for r in report.results)  # progress crossed the cluster


def crash_on_worker(flag: str, fn, args, kwargs, upload=None):
    """Stands in for `call_on_worker`: runs the task, leaves one of its files half-written and
    kills the worker process (the first time only, for the first input)."""
    result = fn(*args, **kwargs)
    spec = args[0]
    if spec.index == 0 and not os.path.exists(flag):
        Path(flag).write_text(str(os.getpid()))
        written = spec.root / result.files[0].path
        with open(written, "r+b") as half:
            half.truncate(written.stat().st_size // 2)
        os._exit(1)
    return result


def test_a_task_whose_worker_dies_is_retried_with_identical_output(cluster, inputs, local_run, tmp_path, monkeypatch):
    flag = tmp_path / "crashed"
    monkeypatch.setattr(engine, "call_on_worker", partial(crash_on_worker, str(flag)))
    out = tmp_path / "ds"
    reporter = Counting()
    report = convert(ConvertRequest(inputs=inputs, output=out, jobs=2, scheduler=cluster.scheduler_address), reporter)
    assert flag.is_file()  # a worker really died in the middle of the run
    same_dataset(local_run[0], out)
    assert reporter.stages["converting"] == sum(r.bytes for r in report.results)  # the rerun counted once


def test_remote_workers_upload_their_files_to_an_s3_output(cluster, s3, inputs, local_run, monkeypatch):  # noqa: F811
    monkeypatch.setenv(engine.SHARED_STAGING_ENV, "0")  # as if the workers ran on other machines
    uri = s3.uri("from-workers")
    report = convert(
        ConvertRequest(inputs=inputs, output=uri, jobs=2, scheduler=cluster.scheduler_address, s3_endpoint=s3.endpoint)
    )
    assert all(r.worker["uploaded"] for r in report.results)
    objects = s3.objects("from-workers")
    local = local_files(local_run[0])
    assert {k: v for k, v in objects.items() if k.startswith(("posts/", "rejects/"))} == {
        k: v for k, v in local.items() if k.startswith(("posts/", "rejects/"))
    }
    assert set(objects) == set(local)  # no scratch keys left behind
    assert objectstore.validate_uri(uri, s3.endpoint).ok


def test_a_local_output_the_workers_cannot_see_is_refused(cluster, inputs, tmp_path, monkeypatch):
    monkeypatch.setenv(engine.SHARED_STAGING_ENV, "0")
    with pytest.raises(OutputError) as refused:
        convert(ConvertRequest(inputs=inputs, output=tmp_path / "ds", scheduler=cluster.scheduler_address))
    assert "cannot see this machine's output folder" in refused.value.message
    assert "s3://" in refused.value.hint
    assert not (tmp_path / "ds").exists()


def test_cli_embedded_cluster_shows_work_per_worker(tmp_path):
    sources = [
        str(write_export(tmp_path / f"in{i}" / "result.json", good_messages(10), chat_id=i + 1)) for i in range(2)
    ]
    result = CliRunner().invoke(main, ["convert", *sources, "-o", str(tmp_path / "ds"), "--engine", "dask", "-j", "2"])
    assert result.exit_code == 0, result.output
    assert "work per Dask worker" in result.stderr and "tcp://127.0.0.1:" in result.stderr
    assert "Wrote 20 rows" in result.stderr


def test_without_the_extra_the_option_names_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now fails
    source = write_export(tmp_path / "result.json", good_messages(2))
    result = CliRunner().invoke(main, ["convert", str(source), "-o", str(tmp_path / "ds"), "--scheduler", "tcp://x:1"])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --scheduler needs Dask distributed, which is not installed\n"
        "Hint: install the optional extra: pip install 'tgexport[dask]'\n"
    )


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "CONNECT_TIMEOUT", "1s")
    source = write_export(tmp_path / "result.json", good_messages(2))
    with pytest.raises(TgExportError) as failed:
        convert(ConvertRequest(inputs=[str(source)], output=tmp_path / "ds", scheduler="tcp://127.0.0.1:9"))
    assert failed.value.message.startswith("cannot reach the Dask scheduler at tcp://127.0.0.1:9")
    assert "dask scheduler" in failed.value.hint
    assert not (tmp_path / "ds").exists()


def test_a_task_error_reaches_the_driver_with_its_hint(cluster, inputs, tmp_path):
    request = ConvertRequest(
        inputs=inputs, output=tmp_path / "ds", on_invalid="fail", scheduler=cluster.scheduler_address
    )
    with pytest.raises(TgExportError) as failed:
        convert(request)
    assert type(failed.value).__name__ == "InvalidItemError"
    assert failed.value.hint and "--on-invalid quarantine" in failed.value.hint
    assert not (tmp_path / "ds").exists() and not list(tmp_path.glob(".ds.staging-*"))


def test_a_large_input_is_split_into_ranges_on_the_cluster(cluster, tmp_path, monkeypatch):
    from helpers import good_messages, write_export

    from exporter import ranged
    from exporter.distributed import DaskExecutor

    src = write_export(tmp_path / "big" / "result.json", good_messages(600, step=3600))
    local = tmp_path / "local"
    convert(ConvertRequest(inputs=[str(src)], output=local, jobs=1))
    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", "20000")
    out = tmp_path / "ds"
    calls = []
    original = ranged._splittable
    monkeypatch.setattr(ranged, "_splittable", lambda spec, ex: calls.append(ex) or original(spec, ex))
    convert(ConvertRequest(inputs=[str(src)], output=out, jobs=2, scheduler=cluster.scheduler_address))
    assert calls and isinstance(calls[0], DaskExecutor) and original(*_spec_and(calls[0], out, src))
    assert local_files(local, "posts/") == local_files(out, "posts/") != {}


def _spec_and(executor, out, src):
    """A TaskSpec for `src` as the pipeline builds it, to ask whether it would be split."""
    from exporter.pipeline import ConvertRequest as Request
    from exporter.pipeline import _plan
    from exporter.progress import DirectProgress

    class Quiet:
        def stage(self, *a):
            return None

        def advance(self, *a):
            return None

    (planned,), _ = _plan(Request(inputs=[str(src)], output=out), Quiet())
    from exporter.converters.base import ConvertOptions
    from exporter.task import TaskSpec

    spec = TaskSpec(
        0,
        planned.unit,
        planned.fmt,
        planned.sha256,
        out,
        "parquet",
        ("year", "month"),
        ConvertOptions(),
        "quarantine",
        "0" * 16,
        {},
        DirectProgress(Quiet()),
    )
    return spec, executor


@pytest.mark.parametrize(
    ("module", "split_bytes"),
    [("test_linesplit", "9000"), ("test_channelsplit", "3000")],  # whole lines; whole TGDataset channels
)
def test_a_large_per_record_file_is_split_on_the_cluster(cluster, tmp_path, monkeypatch, module, split_bytes):
    """Ranges of a Telethon JSON-lines or TGDataset file run on the Dask workers like on the local
    pool: the same dataset."""
    dump = importlib.import_module(module).dump
    src = dump(tmp_path, rounds=6)
    local = tmp_path / "local"
    convert(ConvertRequest(inputs=[str(src)], output=local, jobs=1, tz_name="UTC"))
    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", split_bytes)
    out = tmp_path / "ds"
    report = convert(
        ConvertRequest(inputs=[str(src)], output=out, jobs=2, tz_name="UTC", scheduler=cluster.scheduler_address)
    )
    assert "finalize" in report.results[0].stages, "the input was not split"
    same_dataset(local, out)
