"""The Dask distributed engine, behind the same `concurrent.futures.Executor` seam as the pool.

`--scheduler tcp://HOST:8786` sends the very callables the local pool would run (`run_task`
and whatever else the pipeline submits) to a running cluster; `--scheduler local` starts an
embedded `LocalCluster` (one single-threaded worker process per job). The driver keeps the
whole protocol: it gathers the task results, merges duplicates, writes metadata and commits.

Where tasks write:
* LocalCluster, or remote workers that see the driver's staging folder at the same path (a
  shared filesystem): tasks write into the staging folder, exactly as in a local run.
* remote workers that do not see it, with an `s3://` output: each task writes into a private
  temporary folder on its worker and uploads its finished, uniquely named data files directly
  to their final keys (and its rejects to a temporary key); the driver then fetches them into
  its staging folder to merge duplicates and build the metadata, and skips re-uploading the
  files that did not change. Anything else is refused with a hint.

Dask reruns a task whose worker died (`distributed.scheduler.allowed-failures`); tasks are
idempotent (they clear their own work folder and write the same bytes under the same names).
Progress travels as fire-and-forget worker events (`Worker.log_event`) that the driver
subscribes to. Dask itself is imported only when this engine is used (extra `tgexport[dask]`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, Future, InvalidStateError, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .errors import OutputError, TgExportError, UsageError

log = logging.getLogger(__name__)

EXTRA_HINT = "install the optional extra: pip install 'tgexport[dask]'"
CONNECT_TIMEOUT = "20s"
WAIT_FOR_WORKERS_S = float(os.environ.get("TGEXPORT_DASK_WAIT_S", "600"))
SHARED_STAGING_ENV = "TGEXPORT_SHARED_STAGING"  # 1 / 0: skip the probe (e.g. with autoscaling)


def require_dask(option: str = "--scheduler") -> None:
    """Raise a UsageError naming the extra when Dask distributed is not installed."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError(f"{option} needs Dask distributed, which is not installed", hint=EXTRA_HINT) from None


def resolve_scheduler(scheduler: str | None, engine: str | None) -> str | None:
    """The Dask scheduler for `--scheduler` / `--engine` ("local" = embedded), or None (process pool)."""
    if scheduler and engine == "process":
        raise UsageError("--scheduler runs tasks on Dask, not in a process pool", hint="drop --engine process")
    if engine == "dask" and not scheduler:
        scheduler = "local"
    if scheduler:
        require_dask("--scheduler" if scheduler != "local" or engine != "dask" else "--engine dask")
    return scheduler


# --- code that runs on the workers ----------------------------------------------------------


class EventProgress:
    """A picklable `progress` sink: on a Dask worker, `put` logs a fire-and-forget event."""

    def __init__(self, topic: str) -> None:
        self.topic = topic

    def put(self, item: tuple[int, int]) -> None:
        from distributed import get_worker

        try:
            worker = get_worker()
        except ValueError:  # not on a worker (e.g. called inline): nobody listens
            return
        task = str(worker.get_current_task())  # the same across reruns of one task, unlike the worker
        worker.log_event(self.topic, [task, int(item[1]), worker.address])


def call_on_worker(fn: Callable[..., Any], args: tuple, kwargs: dict, upload: Any = None) -> Any:
    """Run one submitted call on a worker; stamp who ran it and for how long on the result."""
    started = time.perf_counter()
    result = fn(*args, **kwargs) if upload is None else _run_and_upload(fn, args, kwargs, upload)
    if hasattr(result, "worker"):
        result.worker = {
            "address": _worker_address(),
            "seconds": round(time.perf_counter() - started, 3),
            "uploaded": upload is not None,
        }
    return result


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def _run_and_upload(fn: Callable[..., Any], args: tuple, kwargs: dict, upload: Any) -> Any:
    """Run the task into a private folder, then upload its files (data to final keys)."""
    spec = args[0] if args else None
    if not (dataclasses.is_dataclass(spec) and hasattr(spec, "root")):
        return fn(*args, **kwargs)  # a call that writes no dataset files
    local = Path(tempfile.mkdtemp(prefix="tgexport-task-"))
    try:
        (local / "posts").mkdir()
        result = fn(dataclasses.replace(spec, root=local), *args[1:], **kwargs)
        for written in getattr(result, "files", None) or []:
            upload.put(local / written.path, written.path)
        if getattr(result, "rejects", None):
            upload.put(local / result.rejects, upload.scratch(result.rejects))
        return result
    finally:
        shutil.rmtree(local, ignore_errors=True)


def _explain(exc: BaseException) -> BaseException:
    """Dask's KilledWorker (a task took down every worker it ran on) as a TgExportError."""
    if type(exc).__name__ != "KilledWorker":
        return exc
    return TgExportError(
        f"a task was retried on several Dask workers and every one of them died: {exc}",
        hint="look at the worker logs; the usual cause is too little memory per worker "
        "(dask worker --memory-limit, or fewer threads per worker)",
    )


def _staging_visible(probe: str) -> bool:
    return os.path.isfile(probe)


# --- the driver side -------------------------------------------------------------------------


class DaskExecutor(Executor):
    """A `concurrent.futures.Executor` over a Dask client (and the cluster it may own)."""

    def __init__(self, client: Any, cluster: Any = None, upload: Any = None, staging: Path | None = None) -> None:
        self.client, self.cluster, self.upload, self.staging = client, cluster, upload, staging
        self._inner = client.get_executor(pure=False)
        self._fetch = ThreadPoolExecutor(4, thread_name_prefix="tgexport-fetch") if upload is not None else None
        self.topic = f"tgexport-progress-{uuid.uuid4().hex}"
        self._subscribed = False
        # Every task sees the driver's staging folder: work split across tasks that hand files
        # to each other (byte ranges, then a finalize task) can run here; not in upload mode.
        self.shares_staging = upload is None

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        inner = self._inner.submit(call_on_worker, fn, args, kwargs, self.upload)
        outer: Future = Future()

        def resolve(done: Future) -> None:  # on the client's event loop: downloads go to a thread
            if self._fetch is not None and not done.cancelled() and done.exception() is None:
                self._fetch.submit(self._resolve, done, outer)
            else:
                self._resolve(done, outer)

        inner.add_done_callback(resolve)
        outer.add_done_callback(lambda f: inner.cancel() if f.cancelled() else None)
        return outer

    def _resolve(self, done: Future, outer: Future) -> None:
        """Hand a finished task to the caller (fetching uploaded files into staging first)."""
        try:
            if done.cancelled():
                outer.cancel()
                return
            result = done.result()
            if self.upload is not None:
                for written in getattr(result, "files", None) or []:
                    self.upload.get(written.path, self.staging / written.path)
                if getattr(result, "rejects", None):
                    self.upload.get(self.upload.scratch(result.rejects), self.staging / result.rejects)
            outer.set_result(result)
        except InvalidStateError:
            return
        except BaseException as exc:  # handed to the caller through the future
            try:
                outer.set_exception(_explain(exc))
            except InvalidStateError:
                return

    def progress_channel(self, reporter: Any) -> tuple[Any, Callable[[], None]]:
        """A picklable sink for tasks' (index, bytes) reports, drained into `reporter`."""
        counted: dict[str, tuple[str, int]] = {}

        def on_event(event: Any) -> None:
            task, amount, worker = event[1]
            seen_worker, seen = counted.get(task, (worker, 0))
            if seen_worker != worker:  # the task reran after its worker died: count its bytes once
                reporter.advance(-seen)
                seen = 0
            counted[task] = (worker, seen + amount)
            reporter.advance(amount)

        self.client.subscribe_topic(self.topic, on_event)
        self._subscribed = True
        return EventProgress(self.topic), self._unsubscribe

    def _unsubscribe(self) -> None:
        if self._subscribed:
            self._subscribed = False
            try:
                self.client.unsubscribe_topic(self.topic)
            except (ValueError, RuntimeError, OSError):
                return

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._unsubscribe()
        try:
            self._inner.shutdown(wait=wait and not cancel_futures)
            if self._fetch is not None:
                self._fetch.shutdown(wait=wait, cancel_futures=cancel_futures)
        finally:
            self.client.close()
            if self.cluster is not None:
                self.cluster.close()


def dask_executor(
    scheduler: str, jobs: int, tasks: int, staging: Path | None = None, target: Any = None
) -> DaskExecutor:
    """A DaskExecutor for `scheduler` ("local" or an address such as tcp://HOST:8786).

    `staging` is the driver's staging folder; `target` the object-store output (or None).
    """
    require_dask()
    from distributed import Client, LocalCluster

    if scheduler == "local":
        cluster = LocalCluster(
            n_workers=max(1, min(jobs, tasks)),
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # a free port: never collides with another cluster's 8787
            silence_logs=logging.CRITICAL,  # task errors reach the driver and its Error: line
        )
        return DaskExecutor(Client(cluster), cluster)
    client = _connect(Client, scheduler)
    try:
        upload = None if _shares_staging(client, scheduler, staging) else _upload_target(scheduler, target)
        return DaskExecutor(client, None, upload, staging)
    except BaseException:
        client.close()
        raise


def _connect(client_class: Any, scheduler: str) -> Any:
    try:
        return client_class(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise TgExportError(
            f"cannot reach the Dask scheduler at {scheduler}: {exc}",
            hint="start one with `dask scheduler` (and workers with `dask worker tcp://HOST:8786`), "
            "check the address, or use --scheduler local",
        ) from None


def _shares_staging(client: Any, scheduler: str, staging: Path | None) -> bool:
    """Whether every worker sees the driver's staging folder (probe file at the same path)."""
    forced = os.environ.get(SHARED_STAGING_ENV)
    if forced in ("0", "1"):
        return forced == "1"
    try:
        client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS_S)
    except TimeoutError:
        raise TgExportError(
            f"no Dask worker joined the scheduler at {scheduler} within {WAIT_FOR_WORKERS_S:.0f} s",
            hint="start workers with `dask worker " + scheduler + "` (or scale your SLURMCluster)",
        ) from None
    if staging is None:
        return True
    probe = staging / f".probe-{uuid.uuid4().hex}"
    probe.write_bytes(b"")
    try:
        seen = client.run(_staging_visible, str(probe))
    finally:
        probe.unlink(missing_ok=True)
    blind = sorted(address for address, visible in seen.items() if not visible)
    if blind:
        log.info("workers that cannot see the staging folder %s: %s", staging, ", ".join(blind))
    return not blind


def _upload_target(scheduler: str, target: Any) -> Any:
    if target is None:
        raise OutputError(
            f"the workers of {scheduler} cannot see this machine's output folder",
            hint="put -o on a filesystem shared by the driver and every worker (same path everywhere), "
            "or write to an object store: -o s3://bucket/prefix",
        )
    target.retire_success()
    return target.for_workers()


def worker_summary(results: list[Any]) -> list[dict[str, Any]]:
    """Per worker address: tasks, items read, input bytes and task seconds (results that carry it)."""
    rows: dict[str, dict[str, Any]] = {}
    for result in results:
        stamp = getattr(result, "worker", None)
        if not stamp:
            continue
        row = rows.setdefault(stamp["address"], {"worker": stamp["address"], "tasks": 0, "items": 0, "bytes": 0})
        row["tasks"] += 1
        row["items"] += result.read
        row["bytes"] += result.bytes
        row["seconds"] = round(row.get("seconds", 0.0) + stamp["seconds"], 3)
    return [rows[k] for k in sorted(rows)]
