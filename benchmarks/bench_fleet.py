"""Fleet replay on Dask, measured (never asserted): JSON out.

A fleet archive (`--vessels` x `--days` runs of `--hours-per-day` each, written by the plant's
`hil synth` at full scale) is replayed on a LocalCluster of each `--workers` size: wall time,
parallel efficiency (T1 / (n * Tn)), peak RSS per worker process, the results dataset's size,
a DuckDB totals query over it, and, on paper, what a year of a 10-vessel fleet needs on N
nodes from the measured worker-seconds per vessel-day. The 1- and n-worker replays must give
the same totals (checked, reported).

    python benchmarks/bench_fleet.py --out benchmarks/out [--days 7] [--vessels 3]
        [--hours-per-day 24] [--workers 1,2] [--node-cores 16] [--synth-jobs N]
        [--distinct] [--archive DIR] [--keep-results]

Synthesis is the plant's cost, not the DAQ's: each day is synthesised once (in parallel) and
the other vessels replay clones of those days under their own vessel and run ids (`--distinct`
synthesises every vessel-day). The load average is recorded before and after every phase: on
a shared machine the parallel efficiency measures the neighbours, so re-run it on an idle one
(`--archive DIR` keeps the archive for that). A short `--hours-per-day` scales the per-day
cost linearly (every figure says which was run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

VESSELS = ("chikyu", "kaimei", "hakuho", "yokosuka", "shinkai", "natsushima", "mirai", "kairei")


def peak_rss_mb() -> float:
    """Peak resident memory of the calling process (a Dask worker when run with client.run)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_s() -> float:
    """CPU seconds (user + system) of the calling process so far: a load-robust cost."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _synth_day(args: tuple[Path, str, float, int, int, bool]) -> tuple[Path, float]:
    from chikyu_daq.fleet.synth import synth_run

    root, vessel, hours, start_ns, seed, full_scale = args
    t0 = time.perf_counter()
    path = synth_run(root, vessel, hours=hours, start_ns=start_ns, seed=seed,
                     full_scale=full_scale)  # fmt: skip
    return path, time.perf_counter() - t0


def clone_run(src: Path, root: Path, vessel: str) -> Path:
    """`src` as a run of `vessel`: raw segments and truth hard-linked (copied across file
    systems), the manifest rewritten with the vessel and its own run id."""
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["config"]["site"]["vessel"] = vessel
    manifest["run_id"] = f"{manifest['run_id']}-{vessel}"
    manifest["synthetic"] = {**manifest.get("synthetic", {}), "clone_of": str(src)}
    dst = root / vessel / "runs" / manifest["run_id"]
    for f in src.rglob("*"):
        if f.is_file() and f.name != "manifest.json":
            (dst / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(f, dst / f.relative_to(src))
            except OSError:
                shutil.copy2(f, dst / f.relative_to(src))
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return dst


def vessel_name(v: int) -> str:
    return VESSELS[v % len(VESSELS)] + ("" if v < len(VESSELS) else str(v))


def build_archive(
    root: Path, vessels: int, days: int, hours: float, full_scale: bool, *,
    distinct: bool, jobs: int,
) -> dict[str, Any]:  # fmt: skip
    """`days` synthesised days of the first vessel (seed = day), in `jobs` processes; the
    other vessels replay clones of them (same samples and times, own vessel and run ids)
    unless `distinct`, when every vessel-day is synthesised (seed 1000 v + d)."""
    start = int(np.datetime64("2026-02-01T00:00:00", "ns").astype(np.int64))
    todo = [
        (root, vessel_name(v), hours, start + d * 86_400 * 10**9, 1000 * v + d, full_scale)
        for v in range(vessels if distinct else 1)
        for d in range(days)
    ]
    t0 = time.perf_counter()
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as pool:
            made = list(pool.map(_synth_day, todo))
    else:
        made = [_synth_day(a) for a in todo]
    synth_wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    clones = 0
    if not distinct:
        for v in range(1, vessels):
            for path, _ in made:
                clone_run(path, root, vessel_name(v))
                clones += 1
    return {
        "synthesised_runs": len(made),
        "synth_jobs": jobs,
        "synth_wall_s": round(synth_wall, 1),
        "synth_s_per_run": [round(s, 1) for _, s in made],
        "cloned_runs": clones,
        "clone_wall_s": round(time.perf_counter() - t1, 2),
        "other_vessels": "distinct synthetic days per vessel" if distinct else
        "clones of the first vessel's days: same samples and times, own vessel and run ids "
        "(a replay costs the same whatever the vessel; synthesis is the plant, not the DAQ)",
    }  # fmt: skip


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def replay_on(n: int, runs: list[Any], out: Path) -> dict[str, Any]:
    from chikyu_daq.fleet.cluster import dask_client
    from chikyu_daq.fleet.replay_many import replay_fleet

    warm = runs[0].manifest["config"]
    with dask_client(n, warm_config=warm) as client:
        base = client.run(peak_rss_mb)
        cpu0 = client.run(cpu_s)
        t0 = time.perf_counter()
        rows = replay_fleet(client, runs, out)
        wall = time.perf_counter() - t0
        cpu1 = client.run(cpu_s)
        rss = client.run(peak_rss_mb)
    ok = [r for r in rows if r["status"] == "ok"]
    return {
        "workers": n,
        "wall_s": round(wall, 2),
        "runs_ok": len(ok),
        "runs_failed": len(rows) - len(ok),
        "task_wall_s_sum": round(sum(r["wall_s"] for r in ok), 2),
        "worker_cpu_s": round(sum(cpu1[w] - cpu0[w] for w in cpu1), 2),
        "worker_peak_rss_mb": sorted(round(v, 1) for v in rss.values()),
        "worker_rss_after_warm_up_mb": sorted(round(v, 1) for v in base.values()),
        "tasks_per_worker": {
            w: sum(1 for r in ok if r["worker"] == w) for w in sorted({r["worker"] for r in ok})
        },
        "totals": {f"{r['vessel']}/{r['run_id']}": r["cum_rey_kg"] for r in ok},
    }


def split_check(run_dir: Path, out: Path, part_h: float, workers: int) -> dict[str, Any]:
    """One long run: serial replay vs time-split on `workers`; wall times and, per column that
    is not bit-identical, the largest deviation relative to the column's largest magnitude."""
    import pyarrow.parquet as pq

    from chikyu_daq.fleet.cluster import dask_client
    from chikyu_daq.fleet.split import replay_split
    from chikyu_daq.replay.engine import ReplayOptions, replay

    t0 = time.perf_counter()
    replay(run_dir, ReplayOptions(out_dir=out / "serial", report=False))
    serial_s = time.perf_counter() - t0
    with dask_client(workers) as client:
        t1 = time.perf_counter()
        info = replay_split(client, run_dir, out / "split", part_s=part_h * 3600.0)
        split_s = time.perf_counter() - t1
    a = pq.read_table(out / "serial" / "results.parquet")
    b = pq.read_table(out / "split" / "results.parquet")
    dev = {}
    for c in a.column_names:
        x, y = a[c].to_numpy(), b[c].to_numpy()
        if not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
            scale = float(np.nanmax(np.abs(x))) or 1.0
            dev[c] = float(np.nanmax(np.abs(x.astype(float) - y.astype(float))) / scale)
    ev_same = (out / "serial" / "events.jsonl").read_text() == (
        out / "split" / "events.jsonl"
    ).read_text()
    return {
        "hours": info["grid_points"] / 36_000.0,
        "partitions": info["partitions"],
        "warmup_s": info["warmup_s"],
        "serial_wall_s": round(serial_s, 2),
        "split_wall_s": round(split_s, 2),
        "split_workers": workers,
        "rows_equal": a.num_rows == b.num_rows,
        "columns_not_bit_identical": dev,
        "columns_bit_identical": len(a.column_names) - len(dev),
        "events_identical": ev_same,
    }


def duckdb_totals(results: Path) -> dict[str, Any]:
    import duckdb

    t0 = time.perf_counter()
    rows = (
        duckdb.connect()
        .execute(
            "SELECT vessel, count(*) AS n, max(cum_rey_kg) FROM read_parquet(?, "
            "hive_partitioning = true) GROUP BY vessel ORDER BY vessel",
            [str(results / "**" / "*.parquet")],
        )
        .fetchall()
    )
    return {
        "query_s": round(time.perf_counter() - t0, 3),
        "rows_per_vessel": {v: n for v, n, _ in rows},
    }


def paper(
    cpu_s_per_vessel_day: float,
    efficiency: float,
    results_bytes_per_vessel_day: float,
    raw_bytes_per_vessel_day: float,
    node_cores: int,
) -> dict[str, Any]:
    """A year of a 10-vessel fleet: 3,650 vessel-days at the measured cost."""
    vessel_days = 10 * 365
    cpu_h = vessel_days * cpu_s_per_vessel_day / 3600.0
    eff = max(min(efficiency, 1.0), 0.1)
    return {
        "vessel_days": vessel_days,
        "cpu_hours": round(cpu_h, 1),
        "wall_hours_on_nodes": {
            str(n): round(cpu_h / (n * node_cores * eff), 2) for n in (1, 2, 4, 8)
        },
        "wall_hours_on_nodes_if_linear": {
            str(n): round(cpu_h / (n * node_cores), 2) for n in (1, 2, 4, 8)
        },
        "assumes": f"{node_cores} worker processes per node, parallel efficiency {eff:.2f} "
        "(measured here with the largest cluster size; see the load averages) or 1.0 "
        "(runs are independent tasks: the lower bound), at the measured CPU seconds per vessel-day (wall seconds inflate with the load)",
        "results_dataset_gb": round(vessel_days * results_bytes_per_vessel_day / 1e9, 1),
        "raw_archive_gb": round(vessel_days * raw_bytes_per_vessel_day / 1e9, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--vessels", type=int, default=3)
    ap.add_argument("--hours-per-day", type=float, default=24.0)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--node-cores", type=int, default=16)
    ap.add_argument("--ci-riser", action="store_true", help="Short riser (faster synth).")
    ap.add_argument("--archive", type=Path, help="Reuse (or keep) the archive here.")
    ap.add_argument(
        "--distinct",
        action="store_true",
        help="Synthesise every vessel-day (default: clone the first vessel's).",
    )
    ap.add_argument("--synth-jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument(
        "--keep-results",
        action="store_true",
        help="Keep each cluster size's results dataset (default: sized, deleted).",
    )
    ap.add_argument(
        "--split-hours", type=float, default=0.0,
        help="Also: a run this long (hil synth, grade_change) serial vs time-split.",
    )  # fmt: skip
    ap.add_argument("--split-part-h", type=float, default=4.0)
    args = ap.parse_args()
    from chikyu_daq.fleet.runs import open_runs

    loads: dict[str, list[float]] = {"start": load_avg()}
    tmp = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    archive = args.archive or tmp / "archive"
    built = None
    if not archive.exists() or not any(archive.rglob("manifest.json")):
        built = build_archive(
            archive, args.vessels, args.days, args.hours_per_day, not args.ci_riser,
            distinct=args.distinct, jobs=max(1, args.synth_jobs),
        )  # fmt: skip
        loads["after_synth"] = load_avg()
    runs = open_runs([archive])
    sizes = [int(w) for w in args.workers.split(",")]
    measured = []
    res_bytes = 0.0
    duck: dict[str, Any] = {}
    vessel_days = len(runs) * args.hours_per_day / 24.0
    for i, n in enumerate(sizes):
        out = tmp / f"out-{n}"
        loads[f"before_{n}_workers"] = load_avg()
        measured.append(replay_on(n, runs, out))
        loads[f"after_{n}_workers"] = load_avg()
        if i == 0:
            res_bytes = dir_bytes(out / "results") / vessel_days
            duck = duckdb_totals(out / "results")
        if not args.keep_results:
            shutil.rmtree(out, ignore_errors=True)
    t1 = measured[0]["wall_s"]
    for m in measured:
        m["speedup"] = round(t1 / m["wall_s"], 2)
        m["parallel_efficiency"] = round(t1 / (m["workers"] * m["wall_s"] / sizes[0]), 2)
    same = all(m["totals"] == measured[0]["totals"] for m in measured)
    wall_per_day = measured[0]["task_wall_s_sum"] / vessel_days
    cpu_per_day = measured[0]["worker_cpu_s"] / vessel_days
    raw_bytes = sum(dir_bytes(r.path / "raw") for r in runs) / vessel_days
    eff = measured[-1]["parallel_efficiency"] if len(measured) > 1 else 1.0
    report = {
        "command": " ".join(["python", "benchmarks/bench_fleet.py", *sys.argv[1:]]),
        "archive": {
            "vessels": args.vessels,
            "days": args.days,
            "hours_per_day": args.hours_per_day,
            "runs": len(runs),
            "simulated_hours": len(runs) * args.hours_per_day,
            "full_scale_riser": not args.ci_riser,
            **(built or {"reused": str(archive)}),
        },
        "replay": [{k: v for k, v in m.items() if k != "totals"} for m in measured],
        "same_totals_on_every_cluster_size": same,
        "worker_s_per_vessel_day": round(wall_per_day, 2),
        "worker_cpu_s_per_vessel_day": round(cpu_per_day, 2),
        "x_realtime_per_cpu": round(86_400 / cpu_per_day, 0),
        "results_bytes_per_vessel_day": int(res_bytes),
        "raw_bytes_per_vessel_day": int(raw_bytes),
        "duckdb": duck,
        "fleet_year_estimate": paper(cpu_per_day, eff, res_bytes, raw_bytes, args.node_cores),
        "host": {
            "cpus": os.cpu_count(),
            "load_avg_1_5_15m": loads,
            "note": "parallel efficiency means something only where the load stayed below "
            "the core count through the replays",
        },
    }
    if args.split_hours:
        from chikyu_daq.fleet.synth import synth_run

        start = int(np.datetime64("2026-03-01T00:00:00", "ns").astype(np.int64))
        long = synth_run(tmp / "long", "chikyu", hours=args.split_hours, start_ns=start,
                         scenario="grade_change", full_scale=not args.ci_riser)  # fmt: skip
        report["split"] = split_check(long, tmp / "split", args.split_part_h, max(sizes))
    if not args.keep_results:
        shutil.rmtree(tmp, ignore_errors=True)  # an --archive lies outside and stays
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_fleet.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
