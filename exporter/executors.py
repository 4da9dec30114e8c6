"""The `concurrent.futures.Executor` seam: where tasks run.

`--jobs 1` runs tasks inline (simple to debug, exact tracebacks); `--jobs N` uses a process
pool; `--scheduler` returns a Dask executor (exporter/distributed.py) for the same callables.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Executor, Future, ProcessPoolExecutor
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


def make_executor(jobs: int, tasks: int, scheduler: str | None = None, **dask_options: Any) -> Executor:
    """An executor for `tasks` tasks with at most `jobs` workers.

    With `scheduler` ("local" or an address like tcp://HOST:8786) the tasks run on Dask
    (`exporter.distributed`; `dask_options`: staging folder, object-store target).
    """
    if scheduler:
        from .distributed import dask_executor

        return dask_executor(scheduler, jobs, tasks, **dask_options)
    workers = max(1, min(jobs, tasks))
    if workers == 1:
        return InlineExecutor()
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
