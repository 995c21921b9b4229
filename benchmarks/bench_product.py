"""Replay, measured (never asserted): JSON out (product.json).

A synthetic reference-rate recording (`hil synth`) replayed end to end (read, process, write
results) in its own process, as a multiple of real time (target >= 30,000x for 24 h on one
core), with the process's CPU time and peak RSS; a recording a quarter as long is replayed the
same way in the same run, so `peak_rss_ratio_long_over_short` near 1 says memory is flat in
the run's length. The live path (daemon CPU, RSS, latency) is `bench_live.py`.

    python benchmarks/bench_product.py --out benchmarks/out [--hours 24]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "chikyu_daq"]


REPLAY = (
    "import json, resource, sys, time; from pathlib import Path; "
    "from chikyu_daq.replay import ReplayOptions, replay; "
    "t0, c0 = time.perf_counter(), time.process_time(); "
    "s = replay(Path(sys.argv[1]), ReplayOptions(out_dir=Path(sys.argv[2]), report=False)); "
    "print(json.dumps({'wall_s': time.perf_counter() - t0, 'cpu_s': time.process_time() - c0, "
    "'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
    "'grid_points': s['grid_points'], 'rey_error_pct': s.get('rey_error_pct'), "
    "'truth_in_95': s.get('truth_in_95'), 'late_samples': s.get('late_samples')}))"
)


def bench_replay(tmp: Path, hours: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    out = subprocess.run(
        [*CLI, "hil", "synth", "--scenario", "nominal", "--hours", str(hours), "--out", str(tmp)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    synth_s = time.perf_counter() - t0
    info = json.loads(out.stdout)
    res = subprocess.run(
        [sys.executable, "-c", REPLAY, info["run"], str(tmp / "replay")],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    r = json.loads(res.stdout.strip().splitlines()[-1])
    return {
        "hours": hours,
        "raw_samples": info["samples"],
        "synth_wall_s": round(synth_s, 2),
        "replay_wall_s": round(r["wall_s"], 2),
        "replay_cpu_s": round(r["cpu_s"], 2),
        "replay_x_realtime": round(hours * 3600 / r["wall_s"]),
        "replay_x_realtime_cpu": round(hours * 3600 / r["cpu_s"]),
        "peak_rss_mb": round(r["peak_rss_mb"], 1),
        "replay_grid_points": r["grid_points"],
        "late_samples": r["late_samples"],
        "rey_error_pct_vs_truth": r["rey_error_pct"],
        "truth_in_95": r["truth_in_95"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    ap.add_argument("--hours", type=float, default=24.0)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"benchmark": "product", "cores": os.cpu_count()}
    for key, hours in (("replay_short", args.hours / 4), ("replay", args.hours)):
        with tempfile.TemporaryDirectory() as d:
            result[key] = bench_replay(Path(d) / "synth", hours)
    long, short = result["replay"], result["replay_short"]
    result["peak_rss_ratio_long_over_short"] = round(long["peak_rss_mb"] / short["peak_rss_mb"], 2)
    result["targets"] = {"replay_x_realtime": 30_000, "peak_rss_ratio_long_over_short": "~1"}
    text = json.dumps(result, indent=2)
    (args.out / "product.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
