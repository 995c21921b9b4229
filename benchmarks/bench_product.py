"""Replay, measured (never asserted): JSON out (product.json).

Synthetic reference-rate recordings (`hil synth`, nominal) of `--hours` and a quarter of that
are replayed end to end (read, process, write results and events) each in its own process
pinned to one core, as a multiple of real time by wall clock and by the process's CPU time
(target >= 30,000x for 24 h on one core), with its peak RSS: `peak_rss_ratio_long_over_short`
near 1 says memory is flat in the run's length. Baselines in the same run, on the same
recordings: the Parquet decode floor (every raw row group decoded once, nothing else; a replay
of a recording compacted since issue 13 decodes only its channels' row groups, about half) and
the replay of `--baseline-ref` (default the previous commit; on a branch, `main`) from a scratch
export of the repo, of recordings that code wrote itself (the recording's encoding is part of
what is measured), whose results and events must be bit-identical (`identical_to_baseline`).
The two trees' replays alternate round by round (`--repeat` rounds, least CPU kept), so a drift
of the host's speed hits both. The load average is recorded before and after: other work on the
machine slows wall-clock figures first.

    python benchmarks/bench_product.py --out benchmarks/out [--hours 24] [--baseline-ref REF]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from publish import publish

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "chikyu_daq"]

#: One replay in a fresh process on one core; what it prints is the last line of stdout.
REPLAY = """
import json, os, resource, sys, time
from pathlib import Path
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
try:
    from chikyu_daq.replay.engine import ReplayOptions, replay
except ImportError:  # a baseline from before the package-by-concern layout
    from chikyu_daq.replay import ReplayOptions, replay
t0, c0 = time.perf_counter(), time.process_time()
s = replay(Path(sys.argv[1]), ReplayOptions(out_dir=Path(sys.argv[2]), report=False))
print(json.dumps({
    "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "grid_points": s["grid_points"], "rey_error_pct": s.get("rey_error_pct"),
    "truth_in_95": s.get("truth_in_95"), "late_samples": s.get("late_samples")}))
"""

#: The floor: decode every row group of the raw files once, one thread, one core.
DECODE = """
import json, os, sys, time
from pathlib import Path
import pyarrow.parquet as pq
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
t0, c0 = time.perf_counter(), time.process_time()
rows = 0
for f in sorted(Path(sys.argv[1]).glob("raw/**/*.parquet")):
    pf = pq.ParquetFile(f)
    for i in range(pf.num_row_groups):
        rows += pf.read_row_group(i, use_threads=False).num_rows
print(json.dumps({"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                  "rows": rows}))
"""

#: Results and events of two replays compared column by column, as bytes (NaNs included);
#: names and types must match, not the fields' nullable flags (how the file was written).
SAME = """
import json, sys
import pyarrow.parquet as pq
a, b = (pq.read_table(d + "/results.parquet") for d in sys.argv[1:3])
cols = [(f.name, f.type) for f in a.schema] == [(f.name, f.type) for f in b.schema]
diff = [c for c in a.column_names if not cols or
        a[c].to_numpy().tobytes() != b[c].to_numpy().tobytes()]
ev = [open(d + "/events.jsonl", encoding="utf-8").read() for d in sys.argv[1:3]]
print(json.dumps({"identical": cols and not diff and ev[0] == ev[1], "rows": a.num_rows,
                  "differing_columns": diff, "events_identical": ev[0] == ev[1]}))
"""


def _run_json(code: str, args: list[str], root: Path) -> dict[str, Any]:
    res = subprocess.run(
        [sys.executable, "-c", code, *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


def synth(tmp: Path, hours: float, root: Path = REPO) -> tuple[Path, int, float]:
    """A nominal synthetic run of `hours` written by the code at `root`: (run dir, raw samples,
    seconds to make it)."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [*CLI, "hil", "synth", "--scenario", "nominal", "--hours", str(hours), "--out", str(tmp)],
        check=True,
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    info = json.loads(out.stdout)
    return Path(info["run"]), int(info["samples"]), time.perf_counter() - t0


def export(ref: str, into: Path) -> str:
    """The tree of commit `ref` unpacked into `into` (no worktree left behind); its hash."""
    commit = subprocess.run(
        ["git", "rev-parse", ref], check=True, capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    into.mkdir(parents=True)
    archive = into.with_suffix(".tar")
    subprocess.run(["git", "archive", "-o", str(archive), commit], check=True, cwd=REPO)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    archive.unlink()
    return commit


def replay_figures(runs: list[dict[str, Any]], hours: float) -> dict[str, Any]:
    """The figures of the replay with the least CPU among `runs` (the kernels already compiled)."""
    r = min(runs, key=lambda x: x["cpu_s"])
    span = hours * 3600
    return {
        "replay_wall_s": round(r["wall_s"], 2),
        "replay_cpu_s": round(r["cpu_s"], 2),
        "replay_x_realtime": round(span / r["wall_s"]),
        "replay_x_realtime_cpu": round(span / r["cpu_s"]),
        "peak_rss_mb": round(max(x["peak_rss_mb"] for x in runs), 1),
        "replay_grid_points": r["grid_points"],
        "late_samples": r["late_samples"],
        "rey_error_pct_vs_truth": r["rey_error_pct"],
        "truth_in_95": r["truth_in_95"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--repeat", type=int, default=4, help="rounds of replays (best CPU kept)")
    ap.add_argument("--baseline-ref", default="HEAD~1", help="commit whose replay is the baseline")
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "benchmark": "product",
        "cores": os.cpu_count(),
        "pinned_to_one_core": True,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    lengths = {"replay_short": args.hours / 4, "replay": args.hours}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        roots = {"current": REPO}
        if not args.no_baseline:
            result["baseline_commit"] = export(args.baseline_ref, tmp / "baseline")
            roots["baseline"] = tmp / "baseline"
        runs: dict[tuple[str, str], Path] = {}
        for key, hours in lengths.items():
            for name, root in roots.items():
                run, samples, synth_s = synth(tmp / f"synth-{name}-{key}", hours, root)
                runs[name, key] = run
                if name == "current":
                    result[key] = {
                        "hours": hours,
                        "raw_samples": samples,
                        "synth_wall_s": round(synth_s, 2),
                    }
        for name, root in roots.items():  # a first replay compiles or loads the kernels
            run = runs[name, "replay_short"]
            _run_json(REPLAY, [str(run), str(tmp / f"warm-{name}")], root)
        for key, hours in lengths.items():
            # rounds alternate which tree goes first: a drift of the host's speed during the
            # run (seen as 25 % between back-to-back replays of identical code) hits both
            got: dict[str, list[dict[str, Any]]] = {name: [] for name in roots}
            for i in range(args.repeat):
                for name, root in list(roots.items())[:: 1 if i % 2 == 0 else -1]:
                    out = str(tmp / f"{name}-{key}")
                    got[name].append(_run_json(REPLAY, [str(runs[name, key]), out], root))
            for name in roots:
                fig = replay_figures(got[name], hours)
                if name == "current":
                    result[key].update(fig)
                else:
                    result[key]["baseline"] = fig
            if "baseline" in roots:
                result[key]["identical_to_baseline"] = _run_json(
                    SAME, [str(tmp / f"current-{key}"), str(tmp / f"baseline-{key}")], REPO
                )
        span = args.hours * 3600
        for name in roots:
            floor = _run_json(DECODE, [str(runs[name, "replay"])], REPO)
            fig = {
                "cpu_s": round(floor["cpu_s"], 2),
                "x_realtime_cpu": round(span / floor["cpu_s"]),
                "rows": floor["rows"],
            }
            if name == "current":
                result["replay"]["decode_floor"] = fig
            else:
                result["replay"]["baseline"]["decode_floor"] = fig
    long, short = result["replay"], result["replay_short"]
    result["peak_rss_ratio_long_over_short"] = round(long["peak_rss_mb"] / short["peak_rss_mb"], 2)
    if "baseline" in long:
        b_long, b_short = long["baseline"], short["baseline"]
        result["baseline_peak_rss_ratio_long_over_short"] = round(
            b_long["peak_rss_mb"] / b_short["peak_rss_mb"], 2
        )
        result["speedup_vs_baseline_cpu"] = round(b_long["replay_cpu_s"] / long["replay_cpu_s"], 2)
        result["speedup_vs_baseline_wall"] = round(
            b_long["replay_wall_s"] / long["replay_wall_s"], 2
        )
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    result["targets"] = {"replay_x_realtime": 30_000, "peak_rss_ratio_long_over_short": "~1"}
    publish(result, args.out, "product.json")


if __name__ == "__main__":
    main()
