"""Kernel compile cost on a fresh machine, as JSON, and what a cold `run` does meanwhile.

    python benchmarks/bench_compile.py --out benchmarks/out

Each step is its own interpreter with `NUMBA_CACHE_DIR` pointing at a new empty directory (a
fresh machine's cache), running the warm-up the daemon runs before READY
(`processor.warm_up`, which `run` logs as "kernels ready in … s" and `demo` announces as
"warming up the kernels"):

- `cold`: empty cache, every kernel compiled (target < 10 s);
- `warm`: the same cache again, every kernel loaded from it (what each later start pays);
- `import_s`: the imports before the warm-up, both times.

`warm_up_cpu_s` (the process's CPU time) beside the wall time: on a shared host the wall time
of the cold compile is mostly waiting for a core.

The baseline in the same run is `python -c pass` (interpreter start), so start-up figures
compare on a loaded host.

`cold_start` (skip with `--no-daemon`): the real daemon (`chikyu-daq run` against `hil serve`)
with an empty cache. It says READY once acquisition runs and compiles in a helper process
meanwhile, so the figures are: start to READY, start to the first raw sample recorded, the
kernels' own "kernels ready in X s", and whether the results, once warm, begin at the first
sample (`results_cover_first_sample`: the first grid point within one poll of it).
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

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "config" / "reference.toml"

STEP = (
    "import sys, time, json; t0 = time.perf_counter(); "
    "from chikyu_daq.config.model import load_config; from chikyu_daq.live.processor import warm_up; "
    "t1 = time.perf_counter(); c1 = time.process_time(); w = warm_up(load_config(sys.argv[1])); "
    "print(json.dumps({'import_s': t1 - t0, 'warm_up_s': w, "
    "'warm_up_cpu_s': time.process_time() - c1}))"
)


def step(cache: Path) -> dict[str, float]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", STEP, str(CONFIG)],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return {k: round(v, 2) for k, v in {**res, "process_wall_s": wall}.items()}


def cold_start() -> dict[str, Any]:
    """A daemon started with an empty kernel cache: what it records while compiling."""
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "benchmarks"))
    import bench_live as bl

    from chikyu_daq.store.reader import open_run

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        eps = tmp / "eps.json"
        rig = subprocess.Popen(
            [*bl.CLI, "hil", "serve", "-c", str(CONFIG), "--endpoints-out", str(eps)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL,
        )
        old = os.environ.get("NUMBA_CACHE_DIR")
        os.environ["NUMBA_CACHE_DIR"] = str(tmp / "cache")  # inherited by the daemon
        try:
            deadline = time.monotonic() + 60
            while not eps.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            start_ns = time.time_ns()
            daq, ready_s = bl.start_daemon(tmp, bl.daemon_config(tmp, None, None, None), eps, "c")
            try:
                kernels_s = bl.wait_kernels(tmp / "c.log")
                run_dir = next((tmp / "c" / "runs").iterdir())
                warm_ns = time.time_ns()
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    res = open_run(run_dir).results()
                    if len(res.get("t_ns", [])) and int(res["t_ns"][-1]) > warm_ns:
                        break
                    time.sleep(0.2)
                raw = open_run(run_dir).raw(["ft101.volume_flow", "pt301.pressure"])
                first = min(int(v[0][0]) for v in raw.values())
                t = open_run(run_dir).results()["t_ns"]
            finally:
                bl.stop(daq)
        finally:
            bl.stop(rig)
            if old is None:
                os.environ.pop("NUMBA_CACHE_DIR", None)
            else:
                os.environ["NUMBA_CACHE_DIR"] = old
    return {
        "start_to_ready_s": round(ready_s, 2),
        "start_to_first_sample_s": round((first - start_ns) / 1e9, 2),
        "kernels_ready_s": kernels_s,
        "results_first_grid_minus_first_sample_s": round((int(t[0]) - first) / 1e9, 3),
        "results_cover_first_sample": bool(abs(int(t[0]) - first) < 1_000_000_000),
        "results_contiguous": bool((np.diff(t) == 100_000_000).all()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    ap.add_argument("--no-daemon", action="store_true", help="skip the cold daemon start")
    args = ap.parse_args()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        cold = step(Path(d))
        files = sum(1 for p in Path(d).rglob("*") if p.is_file())
        warm = step(Path(d))
    result: dict[str, Any] = {
        "benchmark": "compile",
        "cores": os.cpu_count(),
        "python_start_s": round(bare, 3),
        "cold": cold,
        "warm": warm,
        "cache_files": files,
        "cold_over_warm_warm_up": round(cold["warm_up_s"] / max(warm["warm_up_s"], 1e-3), 1),
        "target_cold_s": 10,
        "within_target": cold["warm_up_s"] < 10,
        "hidden_by": "background warm-up (pipeline.KernelWarmup): acquisition and recording "
        "start at once, results catch up once the kernels are loaded",
        "reported_by": {
            "run": "READY=1 with STATUS 'kernels warming up (N s), recording'; health "
            "'kernels': {'state': 'warming up'|'ready', 'ready_s'}; log 'kernels ready in X s'",
            "demo": "prints that recording starts now and 'kernels ready in X s'; the dashboard "
            "health line shows the state",
        },
    }
    if not args.no_daemon:
        result["cold_start"] = cold_start()
    text = json.dumps(result, indent=2)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compile.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
