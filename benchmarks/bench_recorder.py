"""Recorder CPU at the reference installation's live rates, as JSON (printed, and written to
--out: a directory gets recorder.json).

The recorder as the daemon runs it: `write_raw` of every reference channel at the daemon's ~6
ticks/s (`bench_outputs.reference_ticks`), `write_results` of ~60 columns at 10 rows/s, the
flusher thread every `flush_s` = 0.5 s onto the real disk. Measured per window: CPU of the
whole process per second (feeder and flusher, nothing else runs) and of the flusher thread
alone, voluntary context switches per second, flushes. Baseline in the same run: the writer
of `--baseline-rev` (default `f502232`, the last with one Parquet part per flush and table),
loaded from git into a temporary module; rounds alternate between the two. After each round
the run is closed and both writers' compacted segments are compared (same rows, and whether
the Parquet bytes are identical).

    python benchmarks/bench_recorder.py --out benchmarks/out [--window-s 10 --rounds 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from publish import publish

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_outputs import T0, reference_ticks  # noqa: E402

from chikyu_daq.store import writer as new_writer  # noqa: E402
from chikyu_daq.store.reader import open_run  # noqa: E402

TICK_S = 1 / 6  # the live daemon's raw ticks (outputs off)
RESULT_COLUMNS = 60
RESULT_HZ = 10


def baseline_writer(rev: str) -> ModuleType:
    """`chikyu_daq/store/writer.py` as of `rev`, imported as a module of its own."""
    src = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{rev}:chikyu_daq/store/writer.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "baseline_writer.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("baseline_writer", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def results_rows(k: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    t = T0 + (k * 100 + np.arange(n, dtype=np.int64)) * 100_000_000
    cols: dict[str, Any] = {f"r{i:02d}": rng.standard_normal(n) for i in range(RESULT_COLUMNS - 4)}
    cols |= {f"q{i}": np.zeros(n, np.uint8) for i in range(3)}
    cols["ok"] = np.ones(n, bool)
    return t, cols


def one_window(
    mod: ModuleType, root: Path, ticks: list[dict[str, Any]], window_s: float
) -> dict[str, Any]:
    """One recorder, fed at live rates for `window_s`; its CPU while fed."""
    rng = np.random.default_rng(5)
    rec = mod.Recorder(root, run_id="bench", segment_s=3600.0, flush_s=0.5)
    flusher = rec._thread
    clock = time.pthread_getcpuclockid(flusher.ident)
    stop = threading.Event()
    n_res = 0

    def feed() -> None:
        nonlocal n_res
        k = 0
        next_t = time.monotonic()
        res_owed = 0.0
        while not stop.is_set():
            rec.write_raw(ticks[k % len(ticks)], copy=False)
            res_owed += RESULT_HZ * TICK_S
            n = int(res_owed)
            if n:
                res_owed -= n
                rec.write_results(*results_rows(n_res, n, rng))
                n_res += n
            k += 1
            next_t += TICK_S
            stop.wait(max(0.0, next_t - time.monotonic()))

    feeder = threading.Thread(target=feed, daemon=True)
    time.sleep(0.6)  # past the first flush: files created, imports done
    feeder.start()
    time.sleep(1.5)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    f0 = time.clock_gettime(clock)
    w0 = time.monotonic()
    time.sleep(window_s)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    f1 = time.clock_gettime(clock)
    wall = time.monotonic() - w0
    stop.set()
    feeder.join()
    rec.close()
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    return {
        "process_cpu_pct": round(100 * cpu / wall, 3),
        "flusher_cpu_pct": round(100 * (f1 - f0) / wall, 3),
        "voluntary_cs_per_s": round((r1.ru_nvcsw - r0.ru_nvcsw) / wall, 1),
        "samples": rec.stats()["recorder_samples"],
    }


def identity(old: ModuleType, root: Path, ticks: list[dict[str, Any]]) -> dict[str, Any]:
    """The same ticks and flushes through both writers, closed: are the compacted segments
    (what replay, fleet import and export read) the same bytes, and read the same?"""
    runs = {}
    for name, mod in (("baseline", old), ("streams", new_writer)):
        rng = np.random.default_rng(5)
        rec = mod.Recorder(root / name, run_id="same", segment_s=3600.0, autoflush=False)
        for k, tick in enumerate(ticks[:120]):
            rec.write_raw(tick)
            rec.write_results(*results_rows(2 * k, 2, rng))
            if k % 3 == 2:
                rec.flush()
        rec.close()
        runs[name] = rec.path
    a, b = runs["baseline"], runs["streams"]
    files = sorted(str(p.relative_to(a)) for p in a.glob("*/seg-*"))
    return {
        "files": files,
        "same_files": files == sorted(str(p.relative_to(b)) for p in b.glob("*/seg-*")),
        "same_bytes": all((a / f).read_bytes() == (b / f).read_bytes() for f in files),
        "same_raw": open_run(a).raw_table().equals(open_run(b).raw_table()),
        "same_results": open_run(a).results_table().equals(open_run(b).results_table()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--window-s", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline-rev", default="f502232")
    ap.add_argument("--dir", type=Path, default=None, help="where runs go (default: a temp dir)")
    args = ap.parse_args()
    old = baseline_writer(args.baseline_rev)
    ticks = reference_ticks(int(60 / TICK_S), TICK_S)
    work = Path(tempfile.mkdtemp(prefix="bench_recorder_", dir=args.dir))
    per: dict[str, list[dict[str, Any]]] = {"baseline": [], "streams": []}
    for r in range(args.rounds):
        for name, mod in (("baseline", old), ("streams", new_writer)):
            per[name].append(one_window(mod, work / f"{name}-{r}", ticks, args.window_s))
    check = identity(old, work / "identity", ticks)

    def med(name: str, key: str) -> float:
        return round(statistics.median(w[key] for w in per[name]), 3)

    keys = ("process_cpu_pct", "flusher_cpu_pct", "voluntary_cs_per_s")
    result = {
        "host": {"python": platform.python_version(), "machine": platform.machine()},
        "load": {
            "channels": len(ticks[0]),
            "samples_per_s": round(
                sum(len(t) for tick in ticks for t, _, _ in tick.values()) / (len(ticks) * TICK_S)
            ),
            "ticks_per_s": round(1 / TICK_S, 2),
            "result_rows_per_s": RESULT_HZ,
            "result_columns": RESULT_COLUMNS,
            "flush_s": 0.5,
            "window_s": args.window_s,
            "rounds": args.rounds,
        },
        "baseline_rev": args.baseline_rev,
        "median": {name: {k: med(name, k) for k in keys} for name in per},
        "rounds": per,
        "check": check,
    }
    publish(result, args.out, "recorder.json")


if __name__ == "__main__":
    main()
