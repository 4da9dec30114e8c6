"""Run a command and measure it: wall time and the peak memory of its whole process tree.

Peak RSS of a tree is the highest *sum* over all live descendants at one moment, so it is
sampled from /proc (every 20 ms): `ru_maxrss` of RUSAGE_CHILDREN would only give the largest
single process. RSS counts shared pages (libraries, forked memory) once per process, so the sum
is an upper bound; PSS (proportional set size, /proc/PID/smaps_rollup) splits shared pages
between the processes that map them and is sampled alongside (every 100 ms).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _kids(pid: int) -> list[int] | None:
    """Children of `pid` from /proc/PID/task/TID/children (None: the kernel does not list them)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found += [int(child) for child in f.read().split()]
        except FileNotFoundError:
            return None
        except OSError:
            continue
    return found


def _tree(root: int) -> list[int]:
    """The process tree under `root`: from the children lists of its members when the kernel has
    them (a few reads per tick), else from a scan of every /proc/PID/stat. The scan cost ~5% of a
    core at 20 ms ticks, taken from whatever the measured command runs on every core."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        kids = _kids(pid)
        if kids is None:
            return _scanned_tree(root)
        todo += kids
    return out


def _scanned_tree(root: int) -> list[int]:
    tree, out, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += tree.get(pid, [])
    return out


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class Measured:
    command: list[str]
    wall: float
    returncode: int
    peak_rss: int  # bytes, summed over the process tree
    peak_pss: int
    peak_procs: int
    stdout: str = ""
    stderr: str = ""
    extra: dict = field(default_factory=dict)


class _Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.stop = pid, threading.Event()
        self.peak_rss = self.peak_pss = self.peak_procs = 0

    def run(self) -> None:
        tick = 0
        while not self.stop.is_set():
            pids = _tree(self.pid)
            self.peak_rss = max(self.peak_rss, sum(_rss(p) for p in pids))
            self.peak_procs = max(self.peak_procs, len(pids))
            if tick % 5 == 0:
                self.peak_pss = max(self.peak_pss, sum(_pss(p) for p in pids))
            tick += 1
            self.stop.wait(0.02)


def measure(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Measured:
    """Run `command` to completion; wall time from start to exit, tree memory sampled meanwhile."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd, text=True)
    sampler = _Sampler(proc.pid)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    return Measured(command, wall, proc.returncode, sampler.peak_rss, sampler.peak_pss, sampler.peak_procs, out, err)


def dir_bytes(path: Path, sub: str = "") -> int:
    base = path / sub if sub else path
    if base.is_file():
        return base.stat().st_size
    return sum(p.stat().st_size for p in base.rglob("*") if p.is_file())


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    import platform

    info: dict[str, str] = {"python": platform.python_version(), "kernel": platform.release()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
        info["cpu"] = models[0] if models else "unknown"
    except OSError:
        info["cpu"] = "unknown"
    info["cores"] = str(len(os.sched_getaffinity(0)))
    try:
        mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        info["memory"] = f"{int(mem.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        info["memory"] = "unknown"
    for module in ("pyarrow", "orjson", "ijson", "jsonschema_rs", "pandas", "numpy"):
        try:
            info[module] = __import__(module).__version__
        except (ImportError, AttributeError):
            info[module] = "?"
    info["load_at_start"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return info
