"""The `concurrent.futures.Executor` seam: where tasks run.

`--jobs 1` runs tasks inline (simple to debug, exact tracebacks); `--jobs N` uses a process
pool, or a thread pool when every task is fast-path work (`native=True`: Telegram Desktop JSON,
whose parsing, compute and Parquet encoding run in pyarrow/numpy with the GIL released);
`--scheduler` returns a Dask executor (exporter/distributed.py) for the same callables.

Why threads there: nearly the speed of processes (6-11% slower on two cores, measured: the
Python glue between native calls contends for the GIL) with one interpreter instead of one per
worker (each loads pyarrow and numpy, ~120 MB before any data): the whole tree stays under
400 MB at 5M messages. `TGEXPORT_POOL=processes|threads` overrides the choice.
"""

from __future__ import annotations

import importlib.abc
import multiprocessing
import os
import queue
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any


class InlineExecutor(Executor):
    """Runs each submitted call immediately in this process."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the caller through the future
            future.set_exception(exc)
        return future


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


POOLS = ("processes", "threads")


def make_executor(
    jobs: int, tasks: int, scheduler: str | None = None, native: bool = False, **dask_options: Any
) -> Executor:
    """An executor for `tasks` tasks with at most `jobs` workers.

    With `scheduler` ("local" or an address like tcp://HOST:8786) the tasks run on Dask
    (`exporter.distributed`; `dask_options`: staging folder, object-store target). `native`:
    every task runs the columnar fast path, so threads of this process do as well as processes.
    """
    if scheduler:
        from .distributed import dask_executor

        return dask_executor(scheduler, jobs, tasks, **dask_options)
    workers = max(1, min(jobs, tasks))
    if workers == 1:
        return InlineExecutor()
    pool = os.environ.get("TGEXPORT_POOL") or ("threads" if native else "processes")
    if pool not in POOLS:
        from .errors import UsageError

        raise UsageError(f"TGEXPORT_POOL={pool!r}", hint="set it to threads or processes, or unset it")
    return ThreadPool(workers) if pool == "threads" else LocalPool(workers)


class ThreadPool(ThreadPoolExecutor):
    """Worker threads in this process (see the module docstring for when and why).

    `shares_staging`: ranges of a split input meet in the staging folder, as on a process pool.
    Progress goes straight to the reporter, under a lock (reporters need not be thread-safe).
    """

    shares_staging = True
    shares_memory = True

    def __init__(self, workers: int) -> None:
        _limit_malloc_arenas(workers)
        self._cancel = threading.Event()
        super().__init__(
            max_workers=workers, thread_name_prefix="tgexport", initializer=_bind_cancel, initargs=(self._cancel,)
        )

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """With `cancel_futures` (an error or Ctrl-C in the driver), running tasks stop too, at
        their next batch (`check_cancelled()`): threads cannot be killed, and a range of a big input
        would otherwise run on for many seconds."""
        if cancel_futures:
            self._cancel.set()
        super().shutdown(wait=wait, cancel_futures=cancel_futures)

    def progress_channel(self, reporter: Any) -> tuple[Any, Callable[[], None]]:
        return _LockedProgress(reporter), lambda: None


_THREAD = threading.local()


class TaskCancelled(Exception):
    """Raised inside a task whose pool is shutting down: nobody waits for its result."""


def _bind_cancel(event: threading.Event) -> None:
    _THREAD.cancel = event


def check_cancelled() -> None:
    """Raise TaskCancelled in a worker thread of a ThreadPool that is being shut down."""
    event = getattr(_THREAD, "cancel", None)
    if event is not None and event.is_set():
        raise TaskCancelled


def _limit_malloc_arenas(workers: int) -> None:
    """At most one glibc malloc arena per worker thread (plus the main one).

    Arrow allocates with the system allocator (exporter/__init__.py); glibc would otherwise
    give each busy thread arenas of its own (up to 8 per core) that keep freed batches: at 5M
    messages, 449 -> 342 MB of anonymous memory, same speed. Not glibc: nothing to do.
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(-8, workers + 1)  # M_ARENA_MAX


def release_free_memory() -> None:
    """Hand freed heap memory back to the system (glibc `malloc_trim`; elsewhere nothing).

    Called when a phase ends (the ranges of an input are converted): the arenas of the worker
    threads still hold the pages of their last batches, which the next phase would not reuse.
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def _glibc() -> Any:
    """The C library when it is glibc (`mallopt`, `malloc_trim`), else None."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


class _LockedProgress:
    def __init__(self, reporter: Any) -> None:
        self._reporter, self._lock = reporter, threading.Lock()

    def put(self, item: tuple[int, int]) -> None:
        with self._lock:
            self._reporter.advance(item[1])


# --- the local process pool and its progress channel ---------------------------------------------

_WORKER_PROGRESS: Any = None  # in a worker process: the pool's progress queue


def _init_worker(progress: Any, pandas_unloaded: bool = False) -> None:
    global _WORKER_PROGRESS
    _WORKER_PROGRESS = progress
    if pandas_unloaded:  # as in the driver
        leave_pandas_unloaded()


class _NoPandas(importlib.abc.MetaPathFinder):
    """Makes `import pandas` fail as if it were not installed (see `leave_pandas_unloaded`)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"{name} is left unloaded by tgexport convert", name=name)
        return None


def leave_pandas_unloaded() -> None:
    """Make pandas absent for pyarrow in this process (the `tgexport convert` process only).

    pyarrow imports pandas (0.2 s, ~35 MB per process) the first time it converts a Python
    list, only to ask whether the list is a pandas object; a conversion never hands it one and
    never uses pandas. pandas is optional to pyarrow, which takes the failed import as "not
    installed". A library caller keeps its pandas: only `cli.run` (the console script) asks.
    """
    if "pandas" not in sys.modules and not any(isinstance(f, _NoPandas) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoPandas())


def pandas_unloaded() -> bool:
    return any(isinstance(f, _NoPandas) for f in sys.meta_path)


class WorkerProgress:
    """What tasks get as `TaskSpec.progress` on a LocalPool: picklable, forwards to the pool's queue."""

    def put(self, item: tuple[int, int]) -> None:
        if _WORKER_PROGRESS is not None:
            _WORKER_PROGRESS.put(item)


class LocalPool(ProcessPoolExecutor):
    """A spawn process pool whose workers report progress through one pipe-backed queue.

    No Manager server process (a whole extra interpreter): the queue is handed to the workers
    when they start; tasks carry only a `WorkerProgress` token. Reports are (index, bytes) in
    steps of a few MiB, so the queue stays cheap; the driver drains it into the reporter.
    """

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._progress = context.Queue()
        super().__init__(
            max_workers=workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(self._progress, pandas_unloaded()),
        )

    def progress_channel(self, reporter: Any) -> tuple[WorkerProgress, Callable[[], None]]:
        done = threading.Event()

        def drain(block: bool = True) -> None:
            while True:
                try:
                    item = self._progress.get(timeout=0.1) if block else self._progress.get_nowait()
                except queue.Empty:
                    if done.is_set() or not block:
                        return
                    continue
                except (EOFError, OSError, ValueError):
                    return
                reporter.advance(item[1])

        thread = threading.Thread(target=drain, daemon=True)
        thread.start()

        def stop() -> None:
            done.set()
            thread.join()
            drain(block=False)

        return WorkerProgress(), stop
