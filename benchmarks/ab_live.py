"""A/B of the live daemon's CPU: two source trees against one rig in one run (before/after).

    git archive <base-commit> | tar -x -C /tmp/base
    python benchmarks/ab_live.py . /tmp/base 20 1 off,on     # window s, rounds, phases

Each phase is `bench_live.daemon_phase` with `REPO` pointed at the tree; the bare pymodbus
poller runs before and after. On a shared host only the ratios of one run mean anything.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NEW = Path(sys.argv[1])
BASE = Path(sys.argv[2])
window = float(sys.argv[3])
rounds = int(sys.argv[4])
phases = sys.argv[5].split(",") if len(sys.argv) > 5 else ["off", "on"]
sys.path.insert(0, str(NEW))
sys.path.insert(0, str(NEW / "benchmarks"))
import bench_live as BL  # noqa: E402

res = {"loadavg_before": os.getloadavg()}
with tempfile.TemporaryDirectory() as d:
    tmp = Path(d)
    eps = tmp / "eps.json"
    BL.REPO = NEW
    rig = subprocess.Popen(
        [*BL.CLI, "hil", "serve", "-c", str(BL.CONFIG), "--endpoints-out", str(eps)],
        cwd=NEW,
        env={**os.environ, "PYTHONPATH": str(NEW)},
        stdout=subprocess.DEVNULL,
    )
    try:
        while not eps.exists():
            time.sleep(0.1)
        for tree in (BASE, NEW):
            BL.REPO = tree
            BL.warm_kernels()
        BL.REPO = NEW
        res["bare"] = [BL.bare_poll(eps, rig.pid, 3, window)["cpu_share"]]
        for r in range(rounds):
            for ph in phases:
                for name, tree in (("base", BASE), ("new", NEW)):
                    BL.REPO = tree
                    sub = tmp / f"{name}-{ph}-{r}"
                    sub.mkdir()
                    out = BL.daemon_phase(sub, eps, rig.pid, 10.0, window, ph == "on")
                    res.setdefault(f"{name}_{ph}", []).append(out)
                    print(
                        name,
                        ph,
                        out["cpu_share"],
                        out.get("latency_ms_p99"),
                        out.get("rss_mb"),
                        flush=True,
                    )
        BL.REPO = NEW
        res["bare"].append(BL.bare_poll(eps, rig.pid, 3, window)["cpu_share"])
    finally:
        BL.stop(rig)
res["loadavg_after"] = os.getloadavg()
print(json.dumps(res, indent=1))
