"""`make bench`: tgexport against the naive script, in the same run, pair by pair.

    python bench/run.py --sizes 100000 1000000 5000000 --runs 3 --channels 5

For each size the inputs are generated once into bench/data/ with
/work/shared/bench/gen_tdesktop.py (seed 1; `--channels K` also writes the full-account shape).
Each run measures, alternating the order from run to run:

* `taskset -c 0 tgexport convert IN -o OUT --jobs 1` against `taskset -c 0 python e2e_naive.py`
  (one core each), and
* `tgexport convert IN -o OUT` (default options: all cores) against `python e2e_naive.py`.

The naive script (/work/shared/bench/e2e_naive.py, run unchanged) loads the whole document and
needs ~5.6 GB per million messages, so it is not run above `--naive-max` messages, nor on the
full-account shape (it reads only a single chat's `messages`). Floors (reading the file; pyarrow's
JSON reader on the cut-out messages array) run up to `--floors-max`. Results accumulate in
bench/results.json (one entry per input shape, replaced when re-measured) and the generated part
of docs/performance.md is rewritten from them.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from procs import Measured, dir_bytes, machine, measure  # noqa: E402
from report import write_doc  # noqa: E402

SHARED = Path("/work/shared/bench")
GENERATOR = SHARED / "gen_tdesktop.py"
NAIVE = SHARED / "e2e_naive.py"
PY = sys.executable
TGEXPORT = str(Path(PY).with_name("tgexport"))
PIN = ["taskset", "-c", "0"]
CONFIGS = {
    "tgexport_1core": "tgexport, 1 core (`taskset -c 0`, `--jobs 1`)",
    "naive_1core": "naive, 1 core (`taskset -c 0`)",
    "tgexport_default": "tgexport, default options (all cores)",
    "naive_default": "naive, unpinned",
}


def ensure_input(data: Path, size: int, channels: int) -> Path:
    name = f"tdesktop_{size}.json" if channels <= 1 else f"tdesktop_{size}_c{channels}.json"
    path = data / name
    if not path.exists():
        data.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".partial")
        command = [PY, str(GENERATOR), "--messages", str(size), "--seed", "1", "--out", str(tmp)]
        if channels > 1:
            command += ["--channels", str(channels)]
        print(f"generating {path.name} ...", flush=True)
        subprocess.run(command, check=True)
        tmp.rename(path)
    return path


def run_tgexport(src: Path, out: Path, pinned: bool, profile: Path) -> Measured:
    profile.unlink(missing_ok=True)
    command = [TGEXPORT, "convert", str(src), "-o", str(out), "--overwrite", "-q"]
    command = PIN + command + ["--jobs", "1"] if pinned else command
    env = {**os.environ, "TGEXPORT_PROFILE": str(profile)}
    result = measure(command, env=env)
    if result.returncode not in (0, 3):
        raise SystemExit(f"tgexport failed ({result.returncode}):\n{result.stderr[-2000:]}")
    result.extra["output_bytes"] = dir_bytes(out, "posts")
    result.extra["stages"] = _stages(profile)
    shutil.rmtree(out, ignore_errors=True)
    return result


def _stages(profile: Path) -> dict[str, Any]:
    lines = [json.loads(line) for line in profile.read_text().splitlines()] if profile.exists() else []
    final = [line for line in lines if line["part"] in (None, -1)]
    if not final:
        return {}
    return {"stages": final[-1]["stages"], "rows": final[-1]["rows"], "ranges": len(lines) - 1}


def run_naive(src: Path, out: Path, pinned: bool) -> Measured:
    command = ([*PIN] if pinned else []) + [PY, str(NAIVE), str(src), str(out)]
    result = measure(command)
    if result.returncode != 0:
        raise SystemExit(f"naive script failed ({result.returncode}):\n{result.stderr[-2000:]}")
    result.extra["output_bytes"] = out.stat().st_size
    out.unlink()
    return result


def run_floors(src: Path) -> dict[str, Measured]:
    script = str(HERE / "floors.py")
    return {
        "read": measure([*PIN, PY, script, "read", str(src)]),
        "pyarrow_1thread": measure([*PIN, PY, script, "pyarrow", str(src), "1"]),
        "pyarrow_all_cores": measure([PY, script, "pyarrow", str(src), "2"]),
    }


def _as_dict(m: Measured) -> dict[str, Any]:
    out = {"wall": round(m.wall, 3), "peak_rss": m.peak_rss, "peak_pss": m.peak_pss, "procs": m.peak_procs}
    out.update(m.extra)
    if m.stdout.strip().startswith("{"):
        out["reported"] = json.loads(m.stdout.strip().splitlines()[-1])
    return out


def bench_shape(src: Path, size: int, runs: int, naive: bool, floors: bool, work: Path) -> dict[str, Any]:
    runs_by_config: dict[str, list[dict[str, Any]]] = {k: [] for k in CONFIGS}
    floor_runs: dict[str, list[dict[str, Any]]] = {}
    for i in range(runs):
        order = [("tgexport", True), ("naive", True), ("tgexport", False), ("naive", False)]
        if i % 2:  # alternate which tool goes first in each pair
            order = [order[1], order[0], order[3], order[2]]
        for tool, pinned in order:
            key = f"{tool}_{'1core' if pinned else 'default'}"
            if tool == "naive" and not naive:
                continue
            print(f"  run {i + 1}/{runs}: {key} on {src.name} ...", flush=True)
            if tool == "tgexport":
                measured = run_tgexport(src, work / "dataset", pinned, work / "profile.jsonl")
            else:
                measured = run_naive(src, work / "naive.parquet", pinned)
            runs_by_config[key].append(_as_dict(measured))
        if floors:
            for name, measured in run_floors(src).items():
                floor_runs.setdefault(name, []).append(_as_dict(measured))
    return {
        "messages": size,
        "input_bytes": src.stat().st_size,
        "input": src.name,
        "runs": {k: v for k, v in runs_by_config.items() if v},
        "floors": floor_runs,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--channels", type=int, default=5, help="also the full-account shape (0: skip)")
    parser.add_argument("--naive-max", type=int, default=2_000_000)
    parser.add_argument("--floors-max", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=HERE / "data")
    parser.add_argument("--results", type=Path, default=HERE / "results.json")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "performance.md")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text()) if args.results.exists() else {"shapes": {}}
    results["machine"] = machine()
    compile_package()
    work = HERE / "out" / "work"
    work.mkdir(parents=True, exist_ok=True)
    for size in args.sizes:
        shapes = [(1, f"{size}")] + ([(args.channels, f"{size}-c{args.channels}")] if args.channels > 1 else [])
        for channels, key in shapes:
            src = ensure_input(args.data, size, channels)
            print(f"{key}: {src.name} ({src.stat().st_size / 1e6:.0f} MB)", flush=True)
            single = channels <= 1
            entry = bench_shape(
                src, size, args.runs, single and size <= args.naive_max, single and size <= args.floors_max, work
            )
            entry["channels"] = channels
            results["shapes"][key] = entry
            args.results.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
            write_doc(results, args.doc)
    shutil.rmtree(work, ignore_errors=True)
    print(f"results: {args.results}\nreport: {args.doc}")


def compile_package() -> None:
    """Write exporter's bytecode (`__pycache__`), as `pip install` does for an installed package.

    An editable install only gets it when Python writes it on first import, which
    PYTHONDONTWRITEBYTECODE=1 (set on this machine) prevents: every run, and every spawned worker,
    would then compile the whole package again (~0.17 s of CPU each).
    """
    if not compileall.compile_dir(ROOT / "exporter", quiet=1):
        raise SystemExit("bench: cannot compile the exporter package")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


if __name__ == "__main__":
    main()
