"""bench/procs.py: the process tree and its peak memory, as `make bench` measures them."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import procs  # noqa: E402


def test_tree_from_children_lists_equals_the_proc_scan():
    parent = subprocess.Popen(["bash", "-c", "sleep 2 & sleep 2 & wait"])
    try:
        for _ in range(100):  # until both children exist
            if len(procs._scanned_tree(parent.pid)) == 3:
                break
            time.sleep(0.01)
        assert sorted(procs._tree(parent.pid)) == sorted(procs._scanned_tree(parent.pid))
        assert len(procs._tree(parent.pid)) == 3
    finally:
        parent.kill()
        parent.wait()


def test_peak_rss_sums_the_tree():
    """Two children holding 60 MB each at once: the tree's peak is at least their sum."""
    hold = "import time; b = bytearray(60 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.6)"
    script = (
        "import subprocess, sys; "
        f"ps = [subprocess.Popen([sys.executable, '-c', {hold!r}]) for _ in range(2)]; "
        "[p.wait() for p in ps]"
    )
    measured = procs.measure([sys.executable, "-c", script])
    assert measured.returncode == 0
    assert measured.peak_procs == 3
    assert measured.peak_rss >= 120 << 20
