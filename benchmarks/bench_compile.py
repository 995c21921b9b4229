"""Kernel compile cost on a fresh machine, as JSON: what `run` and `demo` wait for first.

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
CONFIG = REPO / "config" / "reference.toml"

STEP = (
    "import sys, time, json; t0 = time.perf_counter(); "
    "from chikyu_daq.config import load_config; from chikyu_daq.processor import warm_up; "
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
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
        "reported_by": {
            "run": "log line 'kernels ready in X s' before READY=1 (daemon.run_daemon)",
            "demo": "prints 'warming up the kernels, then …' before the warm-up (demo_main)",
        },
    }
    text = json.dumps(result, indent=2)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compile.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
