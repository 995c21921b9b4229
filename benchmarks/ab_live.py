"""A/B of the live daemon's CPU: two source trees against one rig in one run (before/after).

    git archive <base-commit> | tar -x -C /tmp/base
    python benchmarks/ab_live.py . /tmp/base 20 1 off,on     # window s, rounds, phases

Each phase is `bench_live.daemon_phase` with `REPO` pointed at the tree; the bare pymodbus
poller runs before and after. On a shared host only the ratios of one run mean anything.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: How long `hil serve` may take to write its endpoints file.
RIG_START_S = 60.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("new", type=Path, help="The tree under test (its benchmarks/ are used).")
    ap.add_argument("base", type=Path, help="The tree to compare with (e.g. a git archive).")
    ap.add_argument("window", type=float, help="Seconds measured per phase.")
    ap.add_argument("rounds", type=int, help="Rounds of every phase, base and new alternating.")
    ap.add_argument(
        "phases",
        nargs="?",
        default="off,on",
        help="Comma-separated daemon phases: outputs off and/or on (default: off,on).",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    new, base = args.new.resolve(), args.base.resolve()
    phases = args.phases.split(",")
    sys.path.insert(0, str(new))
    sys.path.insert(0, str(new / "benchmarks"))
    import bench_live as BL

    res: dict[str, Any] = {"loadavg_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        eps = tmp / "eps.json"
        BL.REPO = new
        rig = subprocess.Popen(
            [*BL.CLI, "hil", "serve", "-c", str(BL.CONFIG), "--endpoints-out", str(eps)],
            cwd=new,
            env={**os.environ, "PYTHONPATH": str(new)},
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + RIG_START_S
            while not eps.exists():
                if rig.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"hil serve did not start (rc {rig.returncode})")
                time.sleep(0.1)
            for tree in (base, new):
                BL.REPO = tree
                BL.warm_kernels()
            BL.REPO = new
            res["bare"] = [BL.bare_poll(eps, rig.pid, 3, args.window)["cpu_share"]]
            for r in range(args.rounds):
                for ph in phases:
                    for name, tree in (("base", base), ("new", new)):
                        BL.REPO = tree
                        sub = tmp / f"{name}-{ph}-{r}"
                        sub.mkdir()
                        out = BL.daemon_phase(sub, eps, rig.pid, 10.0, args.window, ph == "on")
                        res.setdefault(f"{name}_{ph}", []).append(out)
                        print(
                            name,
                            ph,
                            out["cpu_share"],
                            out.get("latency_ms_p99"),
                            out.get("rss_mb"),
                            file=sys.stderr,  # progress; stdout is the JSON
                            flush=True,
                        )
            BL.REPO = new
            res["bare"].append(BL.bare_poll(eps, rig.pid, 3, args.window)["cpu_share"])
        finally:
            BL.stop(rig)
    res["loadavg_after"] = os.getloadavg()
    med = {
        f"{n}_{ph}": statistics.median(o["cpu_share"] for o in res[f"{n}_{ph}"])
        for ph in phases
        for n in ("base", "new")
    }
    res["median_cpu_share"] = med
    res["new_over_base"] = {ph: round(med[f"new_{ph}"] / med[f"base_{ph}"], 3) for ph in phases}
    return res


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
