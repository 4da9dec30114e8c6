"""Progress from tasks to the driver's reporter: direct in-process, or through a queue."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol


class Reporter(Protocol):
    def stage(self, name: str, total: int | None = None) -> None: ...
    def advance(self, amount: int) -> None: ...


class DirectProgress:
    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter

    def put(self, item: tuple[int, int]) -> None:
        self.reporter.advance(item[1])


def progress_channel(reporter: Reporter, inline: bool) -> tuple[Any, Callable[[], None]]:
    """A queue workers can put (index, bytes) into, drained into the reporter by a thread."""
    if inline:
        return DirectProgress(reporter), lambda: None
    import multiprocessing

    manager = multiprocessing.get_context("spawn").Manager()
    channel = manager.Queue()
    done = threading.Event()

    def drain() -> None:
        while not done.is_set():
            try:
                reporter.advance(channel.get(timeout=0.1)[1])
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()

    def stop() -> None:
        done.set()
        thread.join()
        manager.shutdown()

    return channel, stop
