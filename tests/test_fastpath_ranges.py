"""One input split into byte ranges on several workers gives the very same dataset as --jobs 1.

`TGEXPORT_SPLIT_BYTES` forces tiny ranges so that small test inputs are split too.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import message

from exporter.pipeline import ConvertRequest, convert

sys.path.insert(0, "/work/shared/bench")


def outputs(root: Path) -> dict[str, Any]:
    files = {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and (p.parts[-2] == "rejects" or "posts" in p.relative_to(root).parts)
    }
    manifest = json.loads((root / "_manifest.json").read_text())
    return {"files": files, "manifest": {k: manifest[k] for k in ("files", "inputs", "rejects")}}


def chat_export(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": "Example Channel", "type": "public_channel", "id": 1234567890, "messages": messages}


def generated_messages(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(1, n + 1):
        text: Any = f"post {i} #tag{i % 5} " + "слово " * rng.randint(0, 20)
        extra: dict[str, Any] = {}
        if i % 7 == 0:
            extra["from_id"] = "user-5"  # quarantined: sender_id pattern
        if i % 11 == 0:
            extra["poll"] = {
                "question": "q",
                "closed": False,
                "total_voters": 1,
                "answers": [{"text": "a", "voters": 1}],
            }
        if i % 13 == 0:
            extra["reactions"] = [{"type": "emoji", "count": i, "emoji": "👍"}]
        if i % 17 == 0:
            text = [f"p{i} ", {"type": "link", "text": "example.org/x"}, " ", {"type": "hashtag", "text": "#x"}]
        msg = message(i, 1_600_000_000 + i * 3600 * 5, text, **extra)
        parts = text if isinstance(text, list) else [text]
        msg["text_entities"] = [p if isinstance(p, dict) else {"type": "plain", "text": p} for p in parts]
        if i % 19 == 0:
            msg["id"] = i - 1  # a repeated post id: order between the two rows matters
        out.append(msg)
    return out


def write(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def run(tmp_path: Path, inputs: list[Path], name: str, jobs: int, **kw: Any) -> dict[str, Any]:
    report = convert(ConvertRequest(inputs=[str(p) for p in inputs], output=tmp_path / name, jobs=jobs, **kw))
    return {"outputs": outputs(tmp_path / name), "stages": [dict(r.stages) for r in report.results]}


@pytest.mark.parametrize("pool", ["threads", "processes"])
@pytest.mark.parametrize(
    "kw",
    [{}, {"to": "jsonl"}, {"partition_by": ("chat", "year", "month")}, {"on_invalid": "skip"}],
    ids=["parquet", "jsonl", "by-chat", "skip"],
)
def test_split_input_equals_jobs_one(tmp_path, monkeypatch, kw, pool) -> None:
    src = write(tmp_path / "in" / "result.json", chat_export(generated_messages(600, 1)))
    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", "20000")
    monkeypatch.setenv("TGEXPORT_POOL", pool)
    one = run(tmp_path, [src], "one", 1, **kw)
    two = run(tmp_path, [src], "two", 2, **kw)
    assert "finalize" in two["stages"][0], "the input was not split"
    assert two["outputs"] == one["outputs"]
    monkeypatch.setenv("TGEXPORT_FASTPATH", "0")
    assert run(tmp_path, [src], "slow", 1, **kw)["outputs"] == one["outputs"]


def test_split_account_export_with_several_chats_and_a_small_input(tmp_path, monkeypatch) -> None:
    gen = pytest.importorskip("gen_tdesktop")
    big = tmp_path / "in" / "all.json"
    big.parent.mkdir(parents=True)
    gen.main(["--messages", "1500", "--seed", "4", "--channels", "3", "--out", str(big)])
    small = write(tmp_path / "in2" / "result.json", chat_export(generated_messages(40, 2)))
    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", "60000")
    one = run(tmp_path, [big, small], "one", 1)
    two = run(tmp_path, [big, small], "two", 2)
    assert "finalize" in two["stages"][0]
    assert two["outputs"] == one["outputs"]


def test_unsplittable_input_falls_back_to_one_task(tmp_path, monkeypatch) -> None:
    """Old exports (no `date_unixtime`, so no known era at any cut): one ordinary task, same output."""
    msgs = [{"id": i, "type": "message", "date": "2020-01-01T10:00:00", "text": f"old {i} " * 30} for i in range(300)]
    src = write(tmp_path / "in" / "result.json", chat_export(msgs))
    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", "5000")
    one = run(tmp_path, [src], "one", 1, tz_name="Europe/Berlin")
    two = run(tmp_path, [src], "two", 2, tz_name="Europe/Berlin")
    assert "finalize" not in two["stages"][0]
    assert two["outputs"] == one["outputs"]


def test_split_input_fails_like_jobs_one_on_the_first_invalid_item(tmp_path, monkeypatch) -> None:
    from exporter.task import InvalidItemError

    src = write(tmp_path / "in" / "result.json", chat_export(generated_messages(600, 3)))
    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", "20000")
    messages = []
    for jobs in (1, 2):
        with pytest.raises(InvalidItemError) as caught:
            run(tmp_path, [src], f"fail{jobs}", jobs, on_invalid="fail")
        messages.append(str(caught.value))
    assert messages[0] == messages[1] and "/messages/6" in messages[0]


class RecordingReporter:
    def __init__(self) -> None:
        self.stages: dict[str, list[int]] = {}
        self._current = ""

    def stage(self, name: str, total: int | None = None) -> None:
        self._current = name
        self.stages[name] = [total or 0, 0]

    def advance(self, amount: int) -> None:
        self.stages[self._current][1] += amount


@pytest.mark.parametrize("pool", ["threads", "processes"])
@pytest.mark.parametrize("fastpath", ["1", "0"])
def test_progress_adds_up_to_the_input_bytes_on_split_inputs(tmp_path, monkeypatch, fastpath, pool) -> None:
    src = write(tmp_path / "in" / "result.json", chat_export(generated_messages(600, 5)))
    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", "20000")
    monkeypatch.setenv("TGEXPORT_POOL", pool)
    monkeypatch.setenv("TGEXPORT_FASTPATH", fastpath)
    reporter = RecordingReporter()
    convert(ConvertRequest(inputs=[str(src)], output=tmp_path / "ds", jobs=2), reporter)
    total, done = reporter.stages["converting"]
    assert total == done == src.stat().st_size


def test_pool_choice_threads_for_fast_path_inputs_processes_otherwise(tmp_path, monkeypatch) -> None:
    """Fast-path work (native code, GIL released) runs on threads; anything else on processes."""
    from exporter.errors import UsageError
    from exporter.executors import LocalPool, ThreadPool, make_executor

    monkeypatch.delenv("TGEXPORT_POOL", raising=False)
    for native, kind in ((True, ThreadPool), (False, LocalPool)):
        pool = make_executor(2, 4, native=native)
        try:
            assert type(pool) is kind
        finally:
            pool.shutdown()
    monkeypatch.setenv("TGEXPORT_POOL", "processes")
    pool = make_executor(2, 4, native=True)
    assert type(pool) is LocalPool
    pool.shutdown()
    monkeypatch.setenv("TGEXPORT_POOL", "gpu")
    with pytest.raises(UsageError, match="TGEXPORT_POOL"):
        make_executor(2, 4, native=True)


def test_several_fast_path_inputs_on_threads_equal_jobs_one(tmp_path, monkeypatch) -> None:
    """Several tdesktop inputs, none split: one task per input on the thread pool, same bytes."""
    monkeypatch.delenv("TGEXPORT_POOL", raising=False)
    inputs = [
        write(tmp_path / "in" / f"c{i}" / "result.json", chat_export(generated_messages(200, 10 + i))) for i in range(3)
    ]
    one = run(tmp_path, inputs, "one", 1)
    two = run(tmp_path, inputs, "two", 2)
    assert two["outputs"] == one["outputs"]


def test_gc_pauses_overlap_across_threads() -> None:
    """Overlapping tasks on a thread pool: the collector is back on only after the last one ends."""
    import gc
    import threading

    from exporter.task import _gc_paused

    assert gc.isenabled()
    first, second = threading.Event(), threading.Event()
    seen: list[bool] = []

    def task(start: threading.Event, wait: threading.Event | None) -> None:
        with _gc_paused():
            start.set()
            if wait is not None:
                wait.wait(5)
            seen.append(gc.isenabled())

    a = threading.Thread(target=task, args=(first, second))
    a.start()
    first.wait(5)
    with _gc_paused():  # a second task starts while the first runs, and ends first
        second.set()
        seen.append(gc.isenabled())
    a.join()
    assert seen == [False, False] and gc.isenabled()


def test_thread_pool_shutdown_with_cancel_stops_running_tasks() -> None:
    """Ctrl-C or an error in the driver: running range tasks stop at their next batch."""
    import threading

    from exporter.executors import TaskCancelled, ThreadPool, check_cancelled

    started = threading.Event()

    def long_task() -> int:
        started.set()
        for _ in range(1000):  # 20 s if never told to stop
            check_cancelled()
            threading.Event().wait(0.02)
        return 1000

    pool = ThreadPool(2)
    future = pool.submit(long_task)
    assert started.wait(5)
    pool.shutdown(wait=True, cancel_futures=True)
    assert isinstance(future.exception(timeout=0), TaskCancelled)
    check_cancelled()  # the driver thread itself is never cancelled


def test_convert_on_threads_stops_at_the_first_failure_and_leaves_nothing(tmp_path, monkeypatch) -> None:
    """--on-invalid fail on a split input: the error is raised, other ranges stop, no dataset."""
    from exporter.task import InvalidItemError

    monkeypatch.delenv("TGEXPORT_POOL", raising=False)
    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", "20000")
    src = write(tmp_path / "in" / "result.json", chat_export(generated_messages(600, 3)))
    with pytest.raises(InvalidItemError):
        run(tmp_path, [src], "out", 2, on_invalid="fail")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_threads_only_for_inputs_the_fast_path_will_take(tmp_path) -> None:
    """Inputs whose every message would go per record (pure Python) keep the process pool."""
    from exporter.ranged import native_work
    from exporter.sources import discover

    new = write(tmp_path / "new" / "result.json", chat_export(generated_messages(30, 7)))
    old_msgs = [{"id": i, "type": "message", "date": "2020-01-01T10:00:00", "text": f"old {i}"} for i in range(30)]
    old = write(tmp_path / "old" / "result.json", chat_export(old_msgs))
    minified = tmp_path / "min" / "result.json"
    minified.parent.mkdir()
    minified.write_text(json.dumps(chat_export(generated_messages(30, 8))), encoding="utf-8")
    verdicts = {}
    for path in (new, old, minified):
        (unit,) = discover([str(path)])
        verdicts[path.parent.name] = native_work("tdesktop-json", unit)
    assert verdicts == {"new": True, "old": False, "min": False}


# --- ranges planned while the input is hashed -----------------------------------------------------


def _plan_threads_alive() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name == "tgexport-plan" and t.is_alive()]


def _wait_for_plan_threads() -> list[str]:
    import time

    deadline = time.monotonic() + 10
    while _plan_threads_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    return _plan_threads_alive()


def test_ranges_are_planned_once_while_hashing_and_used(tmp_path, monkeypatch) -> None:
    import threading

    from exporter import pipeline, splitting

    src = write(tmp_path / "in" / "result.json", chat_export(generated_messages(600, 1)))
    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", "20000")
    monkeypatch.setenv("TGEXPORT_POOL", "threads")
    planners: list[str] = []
    hashed: list[str] = []
    real_plan, real_hash = splitting.plan, pipeline._hash

    def plan(stream, chunk):
        planners.append(threading.current_thread().name)
        yield from real_plan(stream, chunk)

    def hash_(unit, reporter):
        hashed.append(unit.display)
        assert planners == ["tgexport-plan"] or _plan_threads_alive(), "planning did not start before the hash"
        return real_hash(unit, reporter)

    monkeypatch.setattr(splitting, "plan", plan)
    monkeypatch.setattr(pipeline, "_hash", hash_)
    two = run(tmp_path, [src], "two", 2)
    assert "finalize" in two["stages"][0], "the input was not split"
    assert planners == ["tgexport-plan"] and hashed == [str(src)]
    assert two["outputs"] == run(tmp_path, [src], "one", 1)["outputs"]
    assert not _wait_for_plan_threads()


def test_early_plans_of_inputs_not_converted_are_stopped(tmp_path, monkeypatch) -> None:
    """A second copy of an input (skipped: same bytes), an append of a known input, and a failed
    hash cancel their planners."""
    from exporter import pipeline, ranged
    from exporter.errors import InputError

    feeds: list[Any] = []
    real_start = ranged.start_planning

    def start(*args: Any, **kwargs: Any) -> Any:
        feeds.append(real_start(*args, **kwargs))
        return feeds[-1]

    monkeypatch.setattr(pipeline, "start_planning", start)
    doc = chat_export(generated_messages(600, 2))
    src, copy = write(tmp_path / "in" / "a.json", doc), write(tmp_path / "in" / "b.json", doc)
    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", "20000")
    monkeypatch.setenv("TGEXPORT_POOL", "threads")
    report = convert(ConvertRequest(inputs=[str(src), str(copy)], output=tmp_path / "ds", jobs=2))
    assert [s["reason"] for s in report.model.skipped_inputs] == [f"same bytes as {src}"]
    assert [f._cancelled for f in feeds] == [False, True]
    again = convert(ConvertRequest(inputs=[str(src)], output=tmp_path / "ds", jobs=2, append=True))
    assert again.results == [] and feeds[2]._cancelled

    def broken(unit: Any, reporter: Any) -> str:
        raise InputError("cannot read it", hint="x")

    monkeypatch.setattr(pipeline, "_hash", broken)
    with pytest.raises(InputError):
        convert(ConvertRequest(inputs=[str(src)], output=tmp_path / "other", jobs=2))
    assert len(feeds) == 4 and feeds[3]._cancelled
    assert not _wait_for_plan_threads()


def test_a_feed_is_cancelled_when_the_executor_cannot_split(tmp_path, monkeypatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from exporter import ranged
    from exporter.sources import discover

    src = write(tmp_path / "in" / "result.json", chat_export(generated_messages(600, 3)))
    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", "20000")
    (unit,) = discover([str(src)], [])
    feed = ranged.start_planning("tdesktop-json", unit, 2)
    assert feed is not None
    spec = type("Spec", (), {"unit": unit, "fmt": "tdesktop-json", "pseudonymize": None})()
    with ThreadPoolExecutor(1) as plain:  # not a pool whose workers share the staging folder
        future = ranged.submit_task(plain, spec, 2, feed)
        future.cancel()
    feed.join(10)
    assert feed._cancelled and not _wait_for_plan_threads()
    assert ranged.start_planning("tdesktop-json", unit, 1) is None  # one job: never split
    assert ranged.start_planning("tdesktop-json", unit, 2, pseudonymize=object()) is None
